# Nomad agent config for a dtle node (server + client on one host; for a cluster give each node its own
# `name`, `bind_addr`/`advertise` and list the servers in `server_join`).
#   nomad agent -config=/etc/dtle/nomad.hcl
# The dtle binary must be in plugin_dir under the name "dtle" (the label of the plugin block below; Nomad 1.10+
# loads only plugins that have a block).

name       = "nomad0"
datacenter = "dc1"
data_dir   = "/var/lib/nomad"
plugin_dir = "/usr/share/dtle/nomad-plugin"
log_level  = "INFO"

bind_addr = "0.0.0.0"
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
ports {
  http = 4646
  rpc  = 4647
  serf = 4648
}

server {
  enabled          = true
  bootstrap_expect = 1
}

client {
  enabled = true
  options = {
    # Fewer driver probes on a dtle-only node.
    "driver.denylist" = "docker,qemu,java,exec,raw_exec"
  }
  # dtle tasks save their position on stop; allow the jobs' kill_timeout (20s in the examples).
  max_kill_timeout = "30s"
}

consul {
  address = "127.0.0.1:8500"
}

plugin "dtle" {
  config {
    log_level = "info"
    # Where positions are kept when consul = "" (<data_dir>/dtle/positions).
    data_dir = "/var/lib/nomad"
    # Consul KV for positions (dtle/<job>/Gtid, BinlogFilePos, JobStage); "" = local files.
    consul       = "127.0.0.1:8500"
    consul_token = ""
    # Go dtle's cluster mode: this node's plugin runs a NATS server on nats_bind (the nats-server program); a dest
    # task publishes nats_advertise under dtle/<job>/NatsAddr in Consul and the job's src connects there. On a
    # multi-node cluster use this node's address in both (e.g. "10.0.0.5:8193"): src nodes must reach it.
    nats_bind      = "127.0.0.1:8193"
    nats_advertise = "127.0.0.1:8193"
    # Or, for a NATS deployment of the site's own (then nats_bind is not used): nats = ["nats://10.0.0.9:4222"]
    compression = "zstd:1"
    # Bytes per second per src task on the link (after compression); 0 = unlimited.
    rate_limit = 0
    # "127.0.0.1:8190" serves GET /v1/status (and /metrics with publish_metrics = true); "" = off.
    api_addr   = ""
    nomad_addr = "127.0.0.1:4646"
    publish_metrics           = false
    stats_collection_interval = 15
  }
}
