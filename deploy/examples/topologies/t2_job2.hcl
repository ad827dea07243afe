# N:1 — test.t2 from source 2 (3309) into the same target as t2_job1.hcl (3308). See t2_job1.hcl.
#   dtle run deploy/examples/topologies/t2_job2.hcl --data-dir dtle-job2
job "job2" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "test"
          Tables = [{ TableName = "t2" }]
        }]
        Gtid = "0-3-1"
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
