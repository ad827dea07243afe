# Renames and filters — every schema shop_<x> of 3307 goes to all_<x> on 3308 (regex rename, DDL rewritten too);
# orders becomes orders_archive there, with only paid rows and three of its columns; no DELETE is replicated.
#   dtle run deploy/examples/topologies/rename_and_filter.hcl --data-dir dtle-rename
job "rename_and_filter" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchemaRegex  = "shop_(\\w+)"
          TableSchemaRename = "all_$${1}"  # $${1}: HCL for the regex group ${1}
          Tables = [{
            TableName     = "orders"
            TableRename   = "orders_archive"
            Where         = "status = 'paid'"
            ColumnMapFrom = ["id", "customer_id", "amount"]
          }]
        }]
        SqlFilter         = ["NoDMLDelete"]
        # The target table of a column map is created by hand.
        SkipCreateDbTable = true
        Gtid              = ""
        ConnectionConfig = {
          Host     = "127.0.0.1"
          Port     = 3307
          User     = "dtle"
          Password = "dtle"
        }
      }
      kill_timeout = "20s"
    }
  }

  group "dest" {
    task "dest" {
      driver = "dtle"
      config {
        ConnectionConfig = {
          Host     = "127.0.0.1"
          Port     = 3308
          User     = "dtle"
          Password = "dtle"
        }
      }
      kill_timeout = "20s"
    }
  }
}
