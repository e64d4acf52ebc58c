// A planner's Node.js script against `khoso serve --pg-addr`, with node-postgres (`pg`) and its
// cursor (`pg-cursor`), from npm.
//
// Usage: NODE_PATH=… node node_client.js PORT USER TOKEN
//
// Runs a parameterised query (bound by the server: pg uses the extended protocol for it), reads
// a query through a cursor 100 rows at a time, and tries a write. Prints one JSON object; the
// Rust test (tools.rs) decides what is right.

const { Client } = require("pg");
const Cursor = require("pg-cursor");

async function main() {
  const [port, user, password] = process.argv.slice(2);
  const client = new Client({ host: "127.0.0.1", port: Number(port), user, password, database: "khoso" });
  await client.connect();
  const answers = {};
  const bound = await client.query(
    "SELECT count(*) AS schools, sum(students) AS students FROM school_reports " +
      "WHERE province_code = $1 AND students > $2",
    ["01", 100],
  );
  answers.bound = [String(bound.rows[0].schools), String(bound.rows[0].students)];
  const cursor = client.query(new Cursor("SELECT school_id FROM school_reports ORDER BY school_id"));
  let read = 0;
  let batches = 0;
  for (;;) {
    const rows = await cursor.read(100);
    if (rows.length === 0) break;
    read += rows.length;
    batches += 1;
  }
  await cursor.close();
  answers.cursor = { rows: read, batches };
  try {
    await client.query("DELETE FROM regions");
    answers.write = "allowed";
  } catch (error) {
    answers.write = error.code;
  }
  await client.end();
  console.log(JSON.stringify(answers));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
