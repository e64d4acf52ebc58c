#!/usr/bin/env bash
# The server's memory for the largest and worst files it may be sent: one upload at a time, each
# a dry run from a province account, on a fresh server with the default 50 MB limit. Prints, for
# each file, its size, the answer and how long it took, and the server's peak memory (VmHWM)
# after it — the bound the README states.
#
#   bench/uploads.sh                 # release build
#   PROFILE=dev bench/uploads.sh     # the dev build, quicker to have
#
# Files: a valid 45 MB school report (about 300,000 rows), the same with one 4 KB cell per row,
# a CSV of 1 MB header cells, an .xlsx of 4.8 million cells (just under the
# bound of 5 million), one whose shared strings unpack past 256 MB, and one whose only cells are A1 and XFD1048576.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${PORT:-18082}"
source bench/build.sh
WORK="$(mktemp -d)"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$KHOSO" --data "$WORK/data" init >/dev/null
TOKEN="$("$KHOSO" --data "$WORK/data" users add bench-uploads --role province --province 01 | tail -1)"

python3 - "$WORK" <<'PY'
import sys, zipfile
work = sys.argv[1]
header = "school_year,province_code,school_id,school_name,commune,level,ownership,students,students_online_ready,students_domestic_platform,students_digital_record,teachers,teachers_online_ready,teachers_digital_record,periods_total,periods_online,computers_for_teaching,internet_for_teaching,management_platform,connected_national_db,cashless_payment\n"
def rows(n, name=lambda i: f"Truong {i}"):
    for i in range(n):
        yield f"2024-2025,01,01{i:07d},{name(i)},Xa {i % 500},primary,public,500,300,200,400,30,20,25,30000,1500,20,yes,yes,yes,no\n"
with open(f"{work}/valid.csv", "w") as f:
    f.write(header)
    for row in rows(300_000):
        f.write(row)
with open(f"{work}/long-cells.csv", "w") as f:
    f.write(header)
    for row in rows(11_000, lambda i: "T" * 4000):
        f.write(row)
with open(f"{work}/wide-header.csv", "w") as f:
    f.write(",".join("h" * 1_000_000 for _ in range(40)) + "\n")
def workbook(path, sheet, strings):
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": '<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            for chunk in sheet:
                f.write(chunk.encode())
            f.write(b"</sheetData></worksheet>")
        with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            for chunk in strings:
                f.write(chunk.encode())
            f.write(b"</sst>")
def cells(n_rows):
    columns = header.strip().split(",")
    yield '<row r="1">' + "".join(f'<c r="{chr(65 + i)}1" t="inlineStr"><is><t>{c}</t></is></c>' for i, c in enumerate(columns[:20])) + "</row>"
    for r in range(2, n_rows + 2):
        yield f'<row r="{r}">' + "".join(f'<c r="{chr(65 + i)}{r}"><v>{r * 7 + i}</v></c>' for i in range(20)) + "</row>"
workbook(f"{work}/big.xlsx", cells(240_000), ["<si><t>x</t></si>"])
workbook(f"{work}/strings-bomb.xlsx", iter(['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']),
         ("<si><t>" + "a" * (1 << 20) + "</t></si>" for _ in range(400)))
workbook(f"{work}/corners.xlsx", iter(['<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c></row><row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t>y</t></is></c></row>']), iter([]))
PY

"$KHOSO" --data "$WORK/data" serve --addr "127.0.0.1:$PORT" >/dev/null 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
echo "== khoso ($PROFILE build), one dry run at a time, 50 MB limit"
echo "server at start: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
for file in valid.csv long-cells.csv wide-header.csv big.xlsx strings-bomb.xlsx corners.xlsx; do
  answer="$(curl -s -o "$WORK/answer" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $TOKEN" \
    --data-binary @"$WORK/$file" "http://127.0.0.1:$PORT/api/v1/submissions?kind=school&year=2024-2025&dry_run=true")"
  rule="$(grep -o '"rule":"[a-z_]*"' "$WORK/answer" | head -1 || true)"
  printf '%-18s %8s  HTTP %s s %-22s peak %s\n' "$file" "$(du -h "$WORK/$file" | cut -f1)" "$answer" "$rule" \
    "$(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && echo "the server still answers"
