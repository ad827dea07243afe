//! The crate's one error type. Every error says whether it is transient (the broker is down or restarting, the
//! network: retry from the last checkpoint) or definite (stop with a message that says what to fix).

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode as Code};

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("invalid value {value:?} for {field}: {reason}")]
    InvalidConfig { field: String, value: String, reason: String },

    #[error("cannot create the Kafka producer for brokers {brokers}: {reason}. Check KafkaConfig.Brokers and KafkaConfig.User/Password")]
    Client { brokers: String, reason: String },

    #[error("Kafka brokers {brokers} are unreachable or not ready: {reason}. Check that the brokers run, that KafkaConfig.Brokers lists host:port they advertise, and that the network allows it")]
    Unreachable { brokers: String, reason: String },

    #[error("Kafka refused to authenticate user {user:?} at {brokers}: {reason}. Check KafkaConfig.User/Password (SASL PLAIN) and the broker's listener settings")]
    Authentication { brokers: String, user: String, reason: String },

    #[error("Kafka denied writing to topic {topic:?} ({code}): grant the job's user WRITE and DESCRIBE on that topic (and IDEMPOTENT_WRITE on the cluster for Kafka < 2.8), or change KafkaConfig.Topic")]
    TopicAuthorization { topic: String, code: String },

    #[error("topic {topic:?} does not exist and the broker does not create topics automatically: create it, or set auto.create.topics.enable=true on the broker")]
    UnknownTopic { topic: String },

    #[error("a message for topic {topic:?} ({what}) is {bytes} bytes, over the size Kafka accepts ({code}): raise the topic's max.message.bytes and the broker's message.max.bytes above it, or keep such rows out of the job (ReplicateIgnoreDb)")]
    MessageTooLarge { topic: String, what: String, bytes: usize, code: String },

    #[error("delivery to topic {topic:?} failed: {code}{hint}")]
    Delivery { topic: String, code: String, transient: bool, hint: &'static str },

    #[error("cannot convert {table}.{column} ({column_type}) to a Kafka Connect value: {reason}")]
    Convert { table: String, column: String, column_type: String, reason: String },
}

pub type Result<T, E = KafkaError> = std::result::Result<T, E>;

impl KafkaError {
    /// Transient errors are worth a retry from the last checkpoint: a broker down or restarting, a timeout.
    pub fn is_transient(&self) -> bool {
        match self {
            KafkaError::Unreachable { .. } => true,
            KafkaError::Delivery { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Classifies a delivery failure of one message.
    pub fn delivery(topic: &str, what: &str, bytes: usize, e: &RdError) -> KafkaError {
        let code = e.rdkafka_error_code();
        let text = e.to_string();
        match code {
            Some(Code::TopicAuthorizationFailed) | Some(Code::ClusterAuthorizationFailed) => {
                KafkaError::TopicAuthorization { topic: topic.to_string(), code: text }
            }
            Some(Code::MessageSizeTooLarge) | Some(Code::InvalidMessageSize) => {
                KafkaError::MessageTooLarge { topic: topic.to_string(), what: what.to_string(), bytes, code: text }
            }
            Some(Code::UnknownTopic) | Some(Code::UnknownTopicOrPartition) => {
                KafkaError::UnknownTopic { topic: topic.to_string() }
            }
            Some(Code::SaslAuthenticationFailed) | Some(Code::Authentication) => {
                KafkaError::Authentication { brokers: String::new(), user: String::new(), reason: text }
            }
            _ => {
                let transient = is_transient_code(code);
                let hint = if transient {
                    " (the broker is down, restarting or slow; retrying from the last checkpoint)"
                } else {
                    ""
                };
                KafkaError::Delivery { topic: topic.to_string(), code: text, transient, hint }
            }
        }
    }
}

/// Codes where waiting and sending again can succeed.
fn is_transient_code(code: Option<Code>) -> bool {
    match code {
        None => true,
        Some(c) => matches!(
            c,
            Code::MessageTimedOut
                | Code::AllBrokersDown
                | Code::BrokerTransportFailure
                | Code::OperationTimedOut
                | Code::Resolve
                | Code::RequestTimedOut
                | Code::NetworkException
                | Code::NotLeaderForPartition
                | Code::LeaderNotAvailable
                | Code::NotEnoughReplicas
                | Code::NotEnoughReplicasAfterAppend
                | Code::NotCoordinator
                | Code::CoordinatorNotAvailable
                | Code::CoordinatorLoadInProgress
                | Code::BrokerNotAvailable
                | Code::QueueFull
                | Code::KafkaStorageError
                | Code::OutOfOrderSequenceNumber
                | Code::UnknownProducerId
                | Code::InvalidProducerEpoch
                | Code::ProducerFenced
                | Code::BrokerDestroy
                | Code::PurgeQueue
                | Code::PurgeInflight
                | Code::ThrottlingQuotaExceeded
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let timeout = RdError::MessageProduction(Code::MessageTimedOut);
        let e = KafkaError::delivery("t.db.x", "db.x key {}", 10, &timeout);
        assert!(e.is_transient(), "{e}");
        let denied = RdError::MessageProduction(Code::TopicAuthorizationFailed);
        let e = KafkaError::delivery("t.db.x", "db.x", 10, &denied);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("\"t.db.x\"") && e.to_string().contains("WRITE"), "{e}");
        let big = RdError::MessageProduction(Code::MessageSizeTooLarge);
        let e = KafkaError::delivery("t.db.x", "db.x key {\"id\":1}", 5_000_000, &big);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("5000000 bytes") && e.to_string().contains("max.message.bytes"), "{e}");
    }
}
