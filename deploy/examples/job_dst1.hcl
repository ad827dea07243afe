# job_dst1: one source → a second target (1:N together with job1): schema demo of 127.0.0.1:3307 also
# goes to 127.0.0.1:3309. Every job reads the source's binlog on its own and keeps its own position.
job "job_dst1" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "demo"
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
    restart {
      interval = "30m"
      attempts = 3
      delay    = "15s"
      mode     = "delay"
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
    restart {
      interval = "30m"
      attempts = 3
      delay    = "15s"
      mode     = "delay"
    }
  }

  reschedule {
    attempts  = 1
    interval  = "30m"
    unlimited = false
  }
}
