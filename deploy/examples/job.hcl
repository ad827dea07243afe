# dtle job, 3.x shape: the src task holds the source and the replication settings,
# the dest task holds the target.
#   dtle run deploy/examples/job.hcl      (standalone)
#   nomad job run deploy/examples/job.hcl (cluster)
# The same job in Nomad JSON form (4.x shape) is job.json.
job "demo" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        # Replicate the whole `demo` schema (all tables, including tables created later).
        ReplicateDoDb = [{
          TableSchema = "demo"
        }]
        # Empty Gtid: full copy, then incremental.
        Gtid      = ""
        ChunkSize = 2000
        ConnectionConfig = {
          Host     = "127.0.0.1"
          Port     = 3307
          User     = "dtle"
          Password = "dtle"
        }
      }
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
