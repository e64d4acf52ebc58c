// A JDBC tool's first sync against `khoso serve --pg-addr`, with pgjdbc (what DBeaver,
// Metabase, Tableau and the JDBC paths of Power BI and Excel use).
//
// Usage: java -cp postgresql.jar JdbcClient.java PORT USER TOKEN
//
// Prints a line per call: its name, a tab, then its rows (columns joined by ',', rows by ';'),
// or "ERROR", the SQLSTATE and the message. The Rust test (tools.rs) decides what is right.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class JdbcClient {
    interface Call {
        ResultSet run() throws SQLException;
    }

    static void print(String name, Call call, String... columns) {
        StringBuilder rows = new StringBuilder();
        try (ResultSet result = call.run()) {
            while (result.next()) {
                if (rows.length() > 0) rows.append(';');
                for (int i = 0; i < columns.length; i++) {
                    if (i > 0) rows.append(',');
                    rows.append(result.getString(columns[i]));
                }
            }
            System.out.println(name + "\t" + rows);
        } catch (SQLException error) {
            String message = String.valueOf(error.getMessage()).split("\n")[0];
            System.out.println(name + "\tERROR " + error.getSQLState() + " " + message);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/khoso";
        try (Connection connection = DriverManager.getConnection(url, args[1], args[2])) {
            DatabaseMetaData meta = connection.getMetaData();
            System.out.println("version\t" + meta.getDatabaseProductVersion());
            print("schemas", meta::getSchemas, "TABLE_SCHEM");
            print("tables", () -> meta.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"}),
                "TABLE_NAME", "TABLE_TYPE");
            print("columns", () -> meta.getColumns(null, "public", "kpi_values", "%"),
                "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME");
            print("primary_keys", () -> meta.getPrimaryKeys(null, "public", "school_reports"), "COLUMN_NAME");
            print("imported_keys", () -> meta.getImportedKeys(null, "public", "school_reports"), "FKCOLUMN_NAME");
            print("index_info", () -> meta.getIndexInfo(null, "public", "school_reports", false, true), "INDEX_NAME");
            print("type_info", meta::getTypeInfo, "TYPE_NAME", "DATA_TYPE");
            PreparedStatement prepared = connection.prepareStatement(
                "SELECT count(*) AS schools FROM school_reports WHERE province_code = ? AND students > ?");
            prepared.setString(1, "01");
            prepared.setLong(2, 100);
            print("prepared", prepared::executeQuery, "schools");
            // A fetch size inside a transaction: pgjdbc reads through a portal, 50 rows at a time.
            connection.setAutoCommit(false);
            Statement cursor = connection.createStatement();
            cursor.setFetchSize(50);
            try (ResultSet rows = cursor.executeQuery("SELECT school_id FROM school_reports")) {
                int count = 0;
                while (rows.next()) count++;
                System.out.println("cursor\t" + count);
            }
            connection.commit();
            connection.setAutoCommit(true);
            print("delete", () -> {
                connection.createStatement().executeUpdate("DELETE FROM regions");
                return connection.createStatement().executeQuery("SELECT 'written' AS w");
            }, "w");
        }
    }
}
