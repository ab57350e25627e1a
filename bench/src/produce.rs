//! A bare producer sending many records: the relay's baseline, and the replay's topic.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::{
    ClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::ToBytes,
    producer::{FutureProducer, FutureRecord},
};

/// Hands every record to `producer` as fast as it takes them (pausing while its queue is full), then waits for
/// every acknowledgement.
pub async fn send_all<'a, C, K, P>(
    producer: &FutureProducer<C>,
    records: impl IntoIterator<Item = FutureRecord<'a, K, P>>,
) -> anyhow::Result<()>
where
    C: ClientContext + 'static,
    K: ToBytes + ?Sized + 'a,
    P: ToBytes + ?Sized + 'a,
{
    let mut deliveries = Vec::new();
    for mut record in records {
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
    }
    for delivery in join_all(deliveries).await {
        delivery?.map_err(|(error, _)| error)?;
    }
    Ok(())
}
