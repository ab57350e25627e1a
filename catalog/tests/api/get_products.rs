use shop_proto::catalog::v1::GetProductsRequest;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app};

async fn seed(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, description, price) in [
        ("Kettle", "Stainless steel electric kettle, 1.7 litres.", 2_499),
        ("Teapot", "Porcelain teapot; pairs well with a kettle.", 1_999),
        ("Mug", "A large mug for tea or coffee.", 899),
        ("Coffee grinder", "Burr grinder for espresso and filter coffee.", 5_900),
    ] {
        ids.push(app.client.post_product(name, description, price).await.unwrap().id);
    }
    ids
}

fn names(products: &[shop_proto::catalog::v1::Product]) -> Vec<&str> {
    products.iter().map(|p| p.name.as_str()).collect()
}

#[tokio::test]
async fn get_product_is_not_found_for_an_unknown_id_and_invalid_for_a_malformed_one() {
    let app = spawn_app().await;

    assert_eq!(app.client.get_product(&Uuid::now_v7().to_string()).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(app.client.get_product("kettle").await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn get_products_pages_through_everything_oldest_first() {
    let app = spawn_app().await;
    seed(&app).await;

    let first = app.client.get_products(GetProductsRequest { take: 3, ..Default::default() }).await.unwrap();
    let rest = app.client.get_products(GetProductsRequest { skip: 3, ..Default::default() }).await.unwrap();

    assert_eq!(names(&first), ["Kettle", "Teapot", "Mug"]);
    assert_eq!(names(&rest), ["Coffee grinder"]);
}

#[tokio::test]
async fn get_products_by_ids_returns_the_known_ones_and_leaves_unknown_ones_out() {
    let app = spawn_app().await;
    let ids = seed(&app).await;

    let request = GetProductsRequest {
        ids: vec![ids[2].clone(), Uuid::now_v7().to_string(), ids[0].clone()],
        ..Default::default()
    };
    let products = app.client.get_products(request).await.unwrap();

    assert_eq!(names(&products), ["Kettle", "Mug"]);
}

#[tokio::test]
async fn get_products_rejects_malformed_ids_naming_each_one() {
    let app = spawn_app().await;

    let request =
        GetProductsRequest { ids: vec![Uuid::now_v7().to_string(), "nope".into()], ..Default::default() };
    let status = app.client.get_products(request).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("ids[1]"), "{}", status.message());
}

#[tokio::test]
async fn search_ranks_name_matches_above_description_matches() {
    let app = spawn_app().await;
    seed(&app).await;

    let request = GetProductsRequest { query: "kettle".into(), ..Default::default() };
    let products = app.client.get_products(request).await.unwrap();

    assert_eq!(names(&products), ["Kettle", "Teapot"]);
}

#[tokio::test]
async fn search_understands_stemming_phrases_and_exclusions() {
    let app = spawn_app().await;
    seed(&app).await;
    let search = |query: &str| GetProductsRequest { query: query.into(), ..Default::default() };

    let stemmed = app.client.get_products(search("grinders")).await.unwrap();
    let excluded = app.client.get_products(search("coffee -espresso")).await.unwrap();
    let nothing = app.client.get_products(search("bicycle")).await.unwrap();

    assert_eq!(names(&stemmed), ["Coffee grinder"]);
    assert_eq!(names(&excluded), ["Mug"]);
    assert!(nothing.is_empty());
}

#[tokio::test]
async fn search_pages_with_skip_and_take_and_combines_with_ids() {
    let app = spawn_app().await;
    let ids = seed(&app).await;

    let second = app
        .client
        .get_products(GetProductsRequest { query: "kettle".into(), skip: 1, take: 1, ..Default::default() })
        .await
        .unwrap();
    let within_ids = app
        .client
        .get_products(GetProductsRequest {
            query: "kettle".into(),
            ids: vec![ids[1].clone()],
            ..Default::default()
        })
        .await
        .unwrap();

    assert_eq!(names(&second), ["Teapot"]);
    assert_eq!(names(&within_ids), ["Teapot"]);
}

#[tokio::test]
async fn a_page_above_the_maximum_is_rejected() {
    let app = spawn_app().await;

    let status =
        app.client.get_products(GetProductsRequest { take: 101, ..Default::default() }).await.unwrap_err();

    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_search_with_a_nul_or_another_control_character_is_invalid_not_internal() {
    let app = spawn_app().await;
    seed(&app).await;

    for query in ["ket\0tle", "kettle\u{1b}[2J"] {
        let request = GetProductsRequest { query: query.into(), ..Default::default() };
        let status = app.client.get_products(request).await.unwrap_err();

        assert_eq!(status.code(), Code::InvalidArgument, "{query:?}: {status:?}");
        assert!(status.message().contains("control characters"), "{status:?}");
    }
}
