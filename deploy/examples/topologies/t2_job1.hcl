# N:1 — test.t2 from two sources into one target: this is source 1 (3307); t2_job2.hcl brings source 2 (3309).
# Both start incrementally after a GTID (no full copy, the target table exists): take it from each source with
#   SELECT @@gtid_binlog_pos;     (MariaDB; on MySQL: SELECT @@gtid_executed)
# Each job keeps its own position row on the target (dtle.replication_position, keyed by job name).
#   dtle run deploy/examples/topologies/t2_job1.hcl --data-dir dtle-job1
job "job1" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "test"
          Tables = [{ TableName = "t2" }]
        }]
        Gtid = "0-1-1"
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
