# Two-way — schema test2 kept in sync between 127.0.0.1:3307 and 127.0.0.1:3309 in one process: a full copy
# 3307 → 3309, then both directions (the reverse one is the job `two_way_dtrev`, starting at 3309's position
# once the copy is done; TwoWaySyncGtid overrides that). dtle marks what it applies, so nothing loops back.
# Conflicting writes to the same row on both sides are not resolved: the last writer wins, or the job stops on a
# row it cannot find. Under Nomad run two jobs (3307 → 3309 and 3309 → 3307) instead: the markers work the same.
#   dtle run deploy/examples/topologies/two_way.hcl --data-dir dtle-two-way
job "two_way" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "test2"
        }]
        Gtid       = ""
        TwoWaySync = true
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
