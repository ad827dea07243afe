# 1:N split — rows of test.t3 with id >= 10 go to 127.0.0.1:3309. See t3_split_lt10.hcl.
#   dtle run deploy/examples/topologies/t3_split_ge10.hcl --data-dir dtle-ge10
job "t3_ge10" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "test"
          Tables = [{
            TableName = "t3"
            Where     = "id>=10"
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
          Port     = 3309
          User     = "dtle"
          Password = "dtle"
        }
      }
      kill_timeout = "20s"
    }
  }
}
