//! Where librdkafka's logs and client-level errors go: to `tracing`, at levels an operator can act on.

use rdkafka::{
    ClientContext,
    config::RDKafkaLogLevel,
    consumer::ConsumerContext,
    error::{KafkaError, RDKafkaErrorCode},
};

/// A client context that sends librdkafka's logs and client-level errors (brokers down, authentication
/// failures) to `tracing`, where operators look.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // The relay sets this property on purpose (see its producer settings); saying so at every start helps no one.
        let level = if facility == "CONFWARN" && message.contains("enable.gapless.guarantee") {
            RDKafkaLogLevel::Debug
        } else {
            level
        };
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", facility, "{message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A consumer that asked for end-of-partition events (a rebuild does, to know where it is) also hears of
        // them here; reaching the end of a partition is news, not an error.
        if matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::debug!(target: "librdkafka", reason, "Reached the end of a partition.");
            return;
        }
        // Transport errors repeat while a broker is away; they are expected and retried, so WARN, not ERROR.
        tracing::warn!(target: "librdkafka", reason, error.message = %error, "Kafka client error.");
    }
}

impl ConsumerContext for TracingContext {}
