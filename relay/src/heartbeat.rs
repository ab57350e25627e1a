//! The outbox's heartbeat: the relay's word that every event the outbox committed before a time is on Kafka
//! ([`shop_events::heartbeat`]), published between batches by the instance that holds shard 0.

use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::FutureRecord,
};
use shop_events::{heartbeat::OutboxHeartbeat, topics};

use crate::{kafka::Producer, relay::RelayParts, store};

/// Publishes the outbox's heartbeat through `producer`, without waiting for it: publishing goes on, and a heartbeat
/// that does not arrive is superseded by the next.
pub(crate) async fn publish(parts: &RelayParts, producer: &Producer) {
    let watermark = match store::watermark(&parts.pool).await {
        Ok(watermark) => watermark,
        Err(error) => {
            tracing::warn!(outbox = %parts.outbox, error.message = %error, "Failed to compute the heartbeat.");
            return;
        }
    };
    let heartbeat = OutboxHeartbeat {
        outbox: parts.outbox.clone(),
        as_of: watermark.as_of,
        published_through: watermark.published_through,
        pending_topics: watermark.pending_topics,
    };
    let payload = serde_json::to_string(&heartbeat).expect("a heartbeat serializes");
    let topic = parts.kafka.topic(topics::HEARTBEATS);
    let headers = heartbeat.headers().into_iter().fold(OwnedHeaders::new(), |headers, (key, value)| {
        headers.insert(Header { key, value: Some(&value) })
    });
    let record = FutureRecord::to(&topic).key(&heartbeat.outbox).payload(&payload).headers(headers);
    match producer.send_result(record) {
        Ok(delivery) => {
            let (heartbeats, outbox) = (parts.metrics.heartbeats.clone(), parts.outbox.clone());
            tokio::spawn(async move {
                match delivery.await {
                    Ok(Ok(_)) => {
                        heartbeats.inc();
                    }
                    Ok(Err((error, _))) => {
                        tracing::debug!(%outbox, error.message = %error, "A heartbeat was not delivered.")
                    }
                    Err(_canceled) => {}
                }
            });
        }
        Err((error, _)) => {
            tracing::debug!(outbox = %parts.outbox, error.message = %error, "A heartbeat could not be sent.")
        }
    }
}
