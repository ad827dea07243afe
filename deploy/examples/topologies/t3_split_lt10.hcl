# 1:N split — rows of test.t3 with id < 10 go to 127.0.0.1:3308 (t3_split_ge10.hcl sends the others to 3309).
# An update that moves a row across the boundary becomes a delete on one side and an insert on the other.
#   dtle run deploy/examples/topologies/t3_split_lt10.hcl --data-dir dtle-lt10
job "t3_lt10" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "test"
          Tables = [{
            TableName = "t3"
            Where     = "id<10"
          }]
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
