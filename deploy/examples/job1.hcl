# job1: one source → one target (1:1). dtle 3.x shape: the src task holds the source and the replication
# settings, the dest task holds the target, so each task carries what it needs (they may run on different nodes,
# meeting over NATS).
#   nomad job run deploy/examples/job1.hcl       # or: dtle run deploy/examples/job1.hcl (no Nomad)
#   curl -XPOST http://127.0.0.1:4646/v1/jobs -d @deploy/examples/job1.json
job "job1" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
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
      # Time to flush the batch in flight and save the position on `nomad job stop`.
      kill_timeout = "20s"
      resources {
        cpu    = 100
        memory = 300
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
      kill_timeout = "20s"
      resources {
        cpu    = 100
        memory = 300
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
