# job_src2: the second source of the N:1 pair (see job_src1.hcl): schema shop2 of 127.0.0.1:3309 goes to
# the same target 127.0.0.1:3308.
job "job_src2" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "shop2"
        }]
        Gtid = ""
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
