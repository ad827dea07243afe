# Consul agent config for dtle's position store (a single server; for a cluster set bootstrap_expect and
# retry_join on every server).
#   consul agent -config-file=/etc/dtle/consul.hcl
# dtle writes dtle/<job>/{Gtid,BinlogFilePos,JobStage} here. With ACLs on, give the plugin's consul_token
# `key_prefix "dtle/" { policy = "write" }`.

node_name        = "consul0"
datacenter       = "dc1"
data_dir         = "/var/lib/consul"
server           = true
bootstrap_expect = 1
bind_addr        = "127.0.0.1"
client_addr      = "127.0.0.1"
ports {
  http = 8500
  dns  = -1
}
ui_config {
  enabled = true
}
log_level = "INFO"
