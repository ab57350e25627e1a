//! The Kafka proxy against the embedded broker: clients work through it, and cutting it cuts them off entirely.

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord, Producer},
};
use shop_testkit::{kafka::TestBroker, proxy::KafkaProxy};

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "0")
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .unwrap()
}

async fn send(producer: &FutureProducer, topic: &str, key: &str) -> Result<(), String> {
    producer
        .send(FutureRecord::<str, str>::to(topic).key(key).payload(key), Duration::from_secs(5))
        .await
        .map(drop)
        .map_err(|(error, _)| error.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "the proxy fronts a single broker: needs the embedded mock cluster")]
async fn records_go_through_the_proxy_wait_while_it_is_cut_and_arrive_once_it_heals() {
    // Arrange
    let broker = TestBroker::start().await;
    let topic = broker.create_topic("test-proxy", 1).await;
    let proxy = KafkaProxy::start(&broker.bootstrap).await;
    let producer = producer(&proxy.bootstrap());
    send(&producer, &topic, "before").await.unwrap();

    // Act: cut, send, heal.
    proxy.cut();
    let waiting = tokio::spawn({
        let (producer, topic) = (producer.clone(), topic.clone());
        async move { send(&producer, &topic, "during").await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delivered_while_cut = broker.read_topic(&topic, 2, Duration::from_millis(500)).await.len();
    proxy.heal();
    waiting.await.unwrap().unwrap();

    // Assert
    assert_eq!(delivered_while_cut, 1, "nothing reaches the broker while the proxy is cut");
    let keys: Vec<String> =
        broker.read_topic(&topic, 2, Duration::from_secs(10)).await.into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["before", "during"]);
    producer.flush(Duration::from_secs(1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(external_kafka, ignore = "the proxy fronts a single broker: needs the embedded mock cluster")]
async fn a_redirected_proxy_takes_its_clients_to_the_other_cluster() {
    let (first, second) = (TestBroker::start().await, TestBroker::start().await);
    let topic = "test-proxy-redirect";
    first.create_named_topic(topic, 1).await;
    second.create_named_topic(topic, 1).await;
    let proxy = KafkaProxy::start(&first.bootstrap).await;
    let producer = producer(&proxy.bootstrap());
    send(&producer, topic, "to the first").await.unwrap();

    proxy.redirect(&second.bootstrap);
    send(&producer, topic, "to the second").await.unwrap();

    let keys = |records: Vec<shop_testkit::kafka::ReadRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.key).collect()
    };
    assert_eq!(keys(first.read_topic(topic, 2, Duration::from_secs(2)).await), ["to the first"]);
    assert_eq!(keys(second.read_topic(topic, 1, Duration::from_secs(10)).await), ["to the second"]);
}
