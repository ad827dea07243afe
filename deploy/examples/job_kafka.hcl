# dtle job with a Kafka target, 3.x shape: the src task holds the source and the replication settings,
# the dest task holds KafkaConfig. Rows become Debezium-compatible JSON messages on <Topic>.<db>.<table>,
# DDL goes to schema-changes.<Topic>.
#   dtle run deploy/examples/job_kafka.hcl      (standalone; positions in ./dtle-data)
#   nomad job run deploy/examples/job_kafka.hcl (cluster)
# The same job in Nomad JSON form (4.x shape) is job_kafka.json.
job "demo-kafka" {
  datacenters = ["dc1"]

  group "src" {
    task "src" {
      driver = "dtle"
      config {
        ReplicateDoDb = [{
          TableSchema = "demo"
        }]
        # Empty Gtid: full copy (op "r" events), then the binlog.
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
  }

  group "dest" {
    task "dest" {
      driver = "dtle"
      config {
        KafkaConfig = {
          Topic   = "demo"
          Brokers = ["127.0.0.1:9092"]
          # Defaults: Converter = "json", TopicWithSchemaTable = true, DateTimeZone = "UTC",
          # SchemaChangeTopic = "schema-changes.<Topic>", MessageGroupMaxSize = 1, MessageGroupTimeout = 100.
        }
      }
    }
  }
}
