# 1:1 — test.t1 of 127.0.0.1:3307 → 127.0.0.1:3308: full copy, then the binlog from the copy's position.
#   dtle run deploy/examples/topologies/t1_one_to_one.hcl
job "t1" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "test"
          Tables = [{ TableName = "t1" }]
        }]
        Gtid = ""
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
