//! docker-compose's gateway and the Keycloak realm it imports agree, without starting a container: the issuer the
//! gateway requires is the one Keycloak puts in its tokens, the audience is the one its mapper adds, the staff role
//! exists and the demo staff user has it, and the gateway requires authentication.

use serde_json::Value;

const COMPOSE: &str = include_str!("../../docker-compose.yaml");
const REALM: &str = include_str!("../../deploy/keycloak/shop-realm.json");

/// The value of `name` in the compose file's environment blocks (`NAME: value`, one occurrence expected).
fn env(name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    let mut values = COMPOSE.lines().filter_map(|line| line.trim().strip_prefix(&prefix));
    let value = values.next().map(|value| value.trim().trim_matches('"').to_owned());
    assert!(values.next().is_none(), "{name} is set twice in docker-compose.yaml");
    value
}

fn realm() -> Value {
    serde_json::from_str(REALM).expect("deploy/keycloak/shop-realm.json is JSON")
}

#[test]
fn the_gateway_in_docker_compose_requires_the_tokens_keycloak_issues() {
    let realm = realm();
    let name = realm["realm"].as_str().unwrap();
    let hostname = env("KC_HOSTNAME").expect("KC_HOSTNAME fixes the issuer");

    assert_eq!(env("AUTH_MODE"), None, "the deployed gateway requires authentication");
    assert_eq!(env("AUTH_ISSUER").unwrap(), format!("{hostname}/realms/{name}"));
    assert_eq!(
        env("AUTH_JWKS_URL").unwrap(),
        format!("http://keycloak:8080/realms/{name}/protocol/openid-connect/certs")
    );
    assert_eq!(env("AUTH_STAFF_CLAIM").unwrap(), "realm_access.roles", "where Keycloak puts realm roles");
}

#[test]
fn the_realm_gives_access_tokens_the_gateways_audience_and_has_its_staff_role_and_demo_users() {
    let realm = realm();
    let audience = env("AUTH_AUDIENCE").unwrap();
    let staff_role = env("AUTH_STAFF_ROLE").unwrap();

    let client =
        realm["clients"].as_array().unwrap().iter().find(|c| c["clientId"] == "shop").expect("client shop");
    assert_eq!(client["publicClient"], true);
    assert_eq!(client["directAccessGrantsEnabled"], true, "curl's password grant, as the README shows");
    let mappers = client["protocolMappers"].as_array().unwrap();
    let audience_mapper =
        mappers.iter().find(|m| m["protocolMapper"] == "oidc-audience-mapper").expect("a mapper");
    assert_eq!(audience_mapper["config"]["included.client.audience"], audience.as_str());
    assert_eq!(audience_mapper["config"]["access.token.claim"], "true");

    let roles = realm["roles"]["realm"].as_array().unwrap();
    assert!(roles.iter().any(|role| role["name"] == staff_role.as_str()), "realm role {staff_role}");
    let users = realm["users"].as_array().unwrap();
    let user = |name: &str| users.iter().find(|user| user["username"] == name).expect(name).clone();
    let roles_of = |user: &Value| user["realmRoles"].as_array().cloned().unwrap_or_default();
    assert!(roles_of(&user("staff")).contains(&Value::from(staff_role.as_str())));
    assert!(roles_of(&user("alice")).is_empty(), "alice is a customer");
    for user in users {
        // A fixed id is a fixed `sub`: the shop binds accounts to it, and a new container re-imports the realm.
        assert!(user["id"].as_str().is_some_and(|id| id.len() == 36), "{user}");
        assert_eq!(
            user["credentials"][0]["temporary"], false,
            "the password grant needs no first-login step"
        );
    }
}
