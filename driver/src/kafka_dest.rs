//! The dest task for a Kafka target (`KafkaConfig`): Debezium-compatible messages through `dtle_kafka::KafkaSink`.
//!
//! There is no position on the target: the start point comes from the position store (local file, or Consul with
//! `--consul`), else from the job file. A position is handed to the checkpoint saver only after the broker
//! acknowledged every message before it, so a crash re-sends at most what was not yet acknowledged
//! (at-least-once). The full copy is sent as `op=r` events; the binlog then continues from the copy's position.

use dtle_kafka::{EnvelopeOptions, KafkaSink, SinkOptions};
use dtle_mysql::prereq::{check_source, SourceRequirements};

use crate::config::{KafkaConfig, ResolvedJob};
use crate::engine;
use crate::error::DriverError;
use crate::standalone::Roles;

/// The sink's settings from the job's KafkaConfig; invalid values are refused with the field's name.
pub fn sink_options(job: &ResolvedJob, k: &KafkaConfig) -> Result<SinkOptions, DriverError> {
    let date_time_zone = dtle_kafka::parse_time_zone(&k.date_time_zone).map_err(|reason| {
        DriverError::InvalidField { field: "KafkaConfig.DateTimeZone".into(), value: k.date_time_zone.clone(), reason }
    })?;
    let envelope = EnvelopeOptions {
        server_name: k.topic.trim().to_string(),
        topic_with_schema_table: k.topic_with_schema_table,
        schema_change_topic: k.schema_change_topic(),
        date_time_zone,
    };
    let mut opts = SinkOptions::new(k.brokers.iter().map(|b| b.trim().to_string()).collect(), envelope);
    opts.user = k.user.clone();
    opts.password = k.password.clone();
    opts.client_id = format!("dtle-{}", job.name);
    opts.defaults_from = Some(engine::source_endpoint(job));
    Ok(opts)
}

/// `dtle validate` and the start checks for a Kafka target: the source's prerequisites, the KafkaConfig values, and
/// a metadata request to the brokers.
pub(crate) async fn validate(job: &ResolvedJob, k: &KafkaConfig, roles: Roles) -> Result<(), DriverError> {
    let opts = sink_options(job, k)?;
    if roles != Roles::DestOnly {
        let req = SourceRequirements {
            needs_gtid: !job.src.gtid.is_empty() || job.src.auto_gtid,
            skip_privilege_check: job.src.skip_privilege_check,
            snapshot_only: job.src.skip_incremental_copy,
        };
        match check_source(&engine::source_endpoint(job), req).await {
            Ok((_, f)) if f.is_empty() => {}
            Ok((_, f)) => return Err(DriverError::Prerequisites(f)),
            Err(e) => return Err(e.into()),
        }
    }
    if roles != Roles::SrcOnly {
        KafkaSink::connect(&opts).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_job_file, TargetConfig};

    fn example(name: &str) -> ResolvedJob {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples").join(name);
        parse_job_file(&path).and_then(|j| j.resolve()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_kafka_examples_are_the_same_job_in_hcl_and_json() {
        let (h, j) = (example("job_kafka.hcl"), example("job_kafka.json"));
        let (TargetConfig::Kafka(hk), TargetConfig::Kafka(jk)) = (&h.target, &j.target) else {
            panic!("expected Kafka targets")
        };
        assert_eq!(hk, jk);
        let o = sink_options(&h, hk).unwrap();
        assert_eq!(o.brokers, ["127.0.0.1:9092"]);
        assert_eq!(o.envelope.server_name, "demo");
        assert_eq!(o.envelope.schema_change_topic, "schema-changes.demo");
        assert!(o.envelope.topic_with_schema_table);
        assert_eq!(o.client_id, "dtle-demo-kafka");
    }

    #[test]
    fn an_unknown_time_zone_names_the_field() {
        let job = example("job_kafka.hcl");
        let TargetConfig::Kafka(mut k) = job.target.clone() else { panic!() };
        k.date_time_zone = "Mars/Olympus".into();
        let e = sink_options(&job, &k).unwrap_err().to_string();
        assert!(
            e.contains("KafkaConfig.DateTimeZone") && e.contains("Mars/Olympus") && e.contains("Asia/Shanghai"),
            "{e}"
        );
    }
}
