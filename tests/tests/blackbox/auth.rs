//! Authentication and RBAC end to end, with requests kubectl sends as JSON (`create -f`, `get`)
//! and curl for the token and review APIs. The same flows through kubectl's typed commands
//! (`create token`, `auth can-i`, `auth whoami`, which send protobuf) are in `auth_kubectl.rs`.

use crate::auth_support;

use std::time::Duration;

use auth_support::{create, curl, eventually, kubectl, kubectl_with_token, ok, run, start, As};
use serde_json::{json, Value};

const SERVICE_ACCOUNT: &str = r#"{"apiVersion": "v1", "kind": "ServiceAccount",
  "metadata": {"name": "builder", "namespace": "default"}}"#;

fn token_for(server: &k3rs_tests::K3rsServer, spec: Value) -> (u16, Value) {
    curl(
        server,
        As::Admin,
        "POST",
        "/api/v1/namespaces/default/serviceaccounts/builder/token",
        Some(
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
        ),
    )
}

#[test]
fn anonymous_clients_reach_only_health_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let (code, _) = curl(&server, As::Anonymous, "GET", path, None);
        assert_eq!(code, 200, "{path}");
    }
    for path in [
        "/api",
        "/apis",
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/secrets",
        "/metrics",
        "/",
    ] {
        let (code, body) = curl(&server, As::Anonymous, "GET", path, None);
        assert_eq!(code, 401, "{path}: {body}");
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["reason"], "Unauthorized");
        assert_eq!(body["message"], "Unauthorized");
    }
    // Bad credentials are refused even where anonymous would pass.
    let (code, _) = curl(&server, As::Token("not-a-token"), "GET", "/healthz", None);
    assert_eq!(code, 401);
    let (code, _) = curl(
        &server,
        As::Token("abcdef.0123456789abcdef"),
        "GET",
        "/version",
        None,
    );
    assert_eq!(code, 401);
}

#[test]
fn service_account_tokens_are_authorized_by_rbac() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    create(&server, SERVICE_ACCOUNT);

    let (code, request) = token_for(&server, json!({}));
    assert_eq!(code, 201, "{request}");
    assert_eq!(request["kind"], "TokenRequest");
    assert_eq!(request["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        request["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local", "k3s"])
    );
    let token = request["status"]["token"].as_str().unwrap().to_owned();
    assert!(request["status"]["expirationTimestamp"].is_string());

    // Authenticated, so discovery works; nothing else is granted yet.
    let (code, _) = curl(&server, As::Token(&token), "GET", "/api", None);
    assert_eq!(code, 200);
    let (success, _, stderr) = run(kubectl_with_token(&server, &token).args(["get", "pods"]));
    assert!(!success);
    assert!(
        stderr.contains(r#"Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:builder" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{stderr}"
    );

    create(
        &server,
        r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "builder-view", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "builder"}]}"#,
    );
    // A grant counts on the very next request.
    let out = ok(kubectl_with_token(&server, &token).args(["get", "pods"]));
    assert!(out.is_empty(), "{out}");
    ok(kubectl_with_token(&server, &token).args(["get", "configmaps", "-o", "name"]));
    // view is read-only, and the binding is for this namespace only.
    let (success, _, stderr) =
        run(kubectl_with_token(&server, &token).args(["delete", "configmap", "x"]));
    assert!(!success);
    assert!(stderr.contains("cannot delete resource"), "{stderr}");
    let (success, _, stderr) =
        run(kubectl_with_token(&server, &token).args(["get", "pods", "-n", "kube-system"]));
    assert!(!success);
    assert!(
        stderr.contains(r#"in the namespace "kube-system""#),
        "{stderr}"
    );
    // Secrets are not in view.
    let (success, _, _) = run(kubectl_with_token(&server, &token).args(["get", "secrets"]));
    assert!(!success);

    // Removing the binding takes the permission away (the cache follows within a moment).
    ok(kubectl(&server).args(["delete", "rolebinding", "builder-view"]));
    let revoked = eventually(Duration::from_secs(5), || {
        let (success, _, _) = run(kubectl_with_token(&server, &token).args(["get", "pods"]));
        (!success).then_some(())
    });
    assert!(revoked.is_some(), "the revoked binding still grants access");

    // A deleted service account's tokens stop working; so does a recreated one (new uid).
    ok(kubectl(&server).args(["delete", "serviceaccount", "builder"]));
    let (code, _) = curl(&server, As::Token(&token), "GET", "/api", None);
    assert_eq!(code, 401);
    create(&server, SERVICE_ACCOUNT);
    let (code, _) = curl(&server, As::Token(&token), "GET", "/api", None);
    assert_eq!(code, 401);
}

#[test]
fn token_requests_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (code, status) = token_for(&server, json!({}));
    assert_eq!(code, 404, "{status}");
    assert_eq!(status["message"], r#"serviceaccounts "builder" not found"#);
    create(&server, SERVICE_ACCOUNT);
    let (code, status) = token_for(&server, json!({"expirationSeconds": 599}));
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"),
        "{status}"
    );
    // A token for another audience does not authenticate to the API server ...
    let (code, request) = token_for(
        &server,
        json!({"audiences": ["vault"], "expirationSeconds": 600}),
    );
    assert_eq!(code, 201, "{request}");
    let vault_token = request["status"]["token"].as_str().unwrap().to_owned();
    let (code, _) = curl(&server, As::Token(&vault_token), "GET", "/api", None);
    assert_eq!(code, 401);
    // ... but a TokenReview for that audience accepts it.
    let (code, review) = curl(
        &server,
        As::Admin,
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        Some(
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": vault_token, "audiences": ["vault"]}}),
        ),
    );
    assert_eq!(code, 201, "{review}");
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:default:builder"
    );
    // A token bound to a pod that does not exist is refused.
    let (code, status) = token_for(
        &server,
        json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "nothing"}}),
    );
    assert_eq!(code, 404, "{status}");
}

#[test]
fn access_reviews_answer_for_self_others_and_impersonated_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let ssar = r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}}"#;
    // As the admin (what `kubectl auth can-i create pods` asks).
    let review = create(&server, ssar);
    assert_eq!(review["status"]["allowed"], true, "{review}");
    // As an impersonated user without any binding (`--as=bob`).
    let mut command = kubectl(&server);
    command.args([
        "create",
        "--validate=false",
        "-o",
        "json",
        "--as=bob",
        "-f",
        "-",
    ]);
    let review: Value =
        serde_json::from_str(&auth_support::with_stdin(&mut command, ssar)).unwrap();
    assert_eq!(review["status"]["allowed"], false, "{review}");
    // Bob gets edit in default through a group; the review follows.
    create(
        &server,
        r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "devs-edit", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}"#,
    );
    let mut command = kubectl(&server);
    command.args([
        "create",
        "--validate=false",
        "-o",
        "json",
        "--as=bob",
        "--as-group=devs",
        "-f",
        "-",
    ]);
    let review: Value =
        serde_json::from_str(&auth_support::with_stdin(&mut command, ssar)).unwrap();
    assert_eq!(review["status"]["allowed"], true, "{review}");
    assert_eq!(
        review["status"]["reason"],
        r#"RBAC: allowed by RoleBinding "devs-edit/default" of ClusterRole "edit" to Group "devs""#
    );
    // SubjectAccessReview asks about someone else; LocalSubjectAccessReview in a namespace.
    let sar = create(
        &server,
        r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "carol", "groups": ["devs"],
                     "resourceAttributes": {"verb": "delete", "group": "apps", "resource": "deployments", "namespace": "default"}}}"#,
    );
    assert_eq!(sar["status"]["allowed"], true, "{sar}");
    let lsar = create(
        &server,
        r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "kube-system"},
            "spec": {"user": "carol", "groups": ["devs"],
                     "resourceAttributes": {"verb": "delete", "group": "apps", "resource": "deployments"}}}"#,
    );
    assert_eq!(lsar["status"]["allowed"], false, "{lsar}");
    // Non-resource URLs.
    let review = create(
        &server,
        r#"{"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": "carol", "groups": ["system:authenticated"],
                     "nonResourceAttributes": {"verb": "get", "path": "/apis/apps"}}}"#,
    );
    assert_eq!(review["status"]["allowed"], true, "{review}");
    // The admin may impersonate; bob's group grants him the list.
    let (success, _, stderr) =
        run(kubectl(&server).args(["get", "pods", "--as=bob", "--as-group=devs"]));
    assert!(success, "{stderr}");
    // Bad requests get a Status with the field named.
    let (code, status) = curl(
        &server,
        As::Admin,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        Some(
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}),
        ),
    );
    assert_eq!(code, 422, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("exactly one of nonResourceAttributes or resourceAttributes must be specified"));
    // Reviews are never stored: there is nothing to list.
    let (code, _) = curl(
        &server,
        As::Admin,
        "GET",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        None,
    );
    assert_eq!(code, 405);
}

#[test]
fn impersonation_needs_the_impersonate_verb() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    create(&server, SERVICE_ACCOUNT);
    let (_, request) = token_for(&server, json!({}));
    let token = request["status"]["token"].as_str().unwrap().to_owned();
    let (success, _, stderr) =
        run(kubectl_with_token(&server, &token).args(["get", "pods", "--as=system:admin"]));
    assert!(!success);
    assert!(
        stderr.contains(r#"users "system:admin" is forbidden: User "system:serviceaccount:default:builder" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{stderr}"
    );
    let (success, _, stderr) = run(kubectl_with_token(&server, &token).args([
        "get",
        "pods",
        "--as=x",
        "--as-group=system:masters",
    ]));
    assert!(!success);
    assert!(stderr.contains("cannot impersonate"), "{stderr}");
}

#[test]
fn self_subject_reviews_say_who_you_are() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let ssr = r#"{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}"#;
    let review = create(&server, ssr);
    let info = &review["status"]["userInfo"];
    assert_eq!(info["username"], "system:admin", "{review}");
    assert_eq!(
        info["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    // A service account sees its own identity, and so may an impersonator.
    create(&server, SERVICE_ACCOUNT);
    let (_, request) = token_for(&server, json!({}));
    let token = request["status"]["token"].as_str().unwrap().to_owned();
    let (code, review) = curl(
        &server,
        As::Token(&token),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&serde_json::from_str(ssr).unwrap()),
    );
    assert_eq!(code, 201, "{review}");
    let info = &review["status"]["userInfo"];
    assert_eq!(info["username"], "system:serviceaccount:default:builder");
    assert_eq!(
        info["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert!(info["uid"].is_string());
    // Rules review: what the service account may do in default.
    let (code, rules) = curl(
        &server,
        As::Token(&token),
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        Some(
            &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}}),
        ),
    );
    assert_eq!(code, 201, "{rules}");
    let resource_rules = rules["status"]["resourceRules"].as_array().unwrap();
    assert!(resource_rules.iter().any(|r| r["resources"]
        .as_array()
        .unwrap()
        .contains(&json!("selfsubjectaccessreviews"))));
    assert!(!resource_rules
        .iter()
        .any(|r| r["resources"].as_array().unwrap().contains(&json!("pods"))));
}

#[test]
fn bootstrap_tokens_authenticate_bootstrappers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    create(
        &server,
        r#"{"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "data": {"token-id": "YWJjZGVm", "token-secret": "MDEyMzQ1Njc4OWFiY2RlZg==",
                     "usage-bootstrap-authentication": "dHJ1ZQ==",
                     "auth-extra-groups": "c3lzdGVtOmJvb3RzdHJhcHBlcnM6azNyczpkZWZhdWx0LW5vZGUtdG9rZW4="}}"#,
    );
    let (code, review) = curl(
        &server,
        As::Token("abcdef.0123456789abcdef"),
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})),
    );
    assert_eq!(code, 201, "{review}");
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:bootstrap:abcdef"
    );
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        json!([
            "system:bootstrappers",
            "system:bootstrappers:k3rs:default-node-token",
            "system:authenticated"
        ])
    );
    let (code, _) = curl(
        &server,
        As::Token("abcdef.0123456789abcdee"),
        "GET",
        "/api",
        None,
    );
    assert_eq!(code, 401);
}

#[test]
fn default_roles_are_aggregated_and_follow_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let rules_of = |role: &str| -> Vec<Value> {
        let out = ok(kubectl(&server).args(["get", "clusterrole", role, "-o", "json"]));
        let role: Value = serde_json::from_str(&out).unwrap();
        role["rules"].as_array().cloned().unwrap_or_default()
    };
    let grants = |rules: &[Value], verb: &str, resource: &str| {
        rules.iter().any(|r| {
            r["verbs"].as_array().unwrap().contains(&json!(verb))
                && r["resources"]
                    .as_array()
                    .is_some_and(|res| res.contains(&json!(resource)))
        })
    };
    // Ready means aggregated: view ⊂ edit ⊂ admin.
    let view = rules_of("view");
    let edit = rules_of("edit");
    let admin = rules_of("admin");
    assert!(grants(&view, "list", "pods"));
    assert!(!grants(&view, "create", "pods"));
    assert!(grants(&edit, "create", "pods") && grants(&edit, "list", "pods"));
    assert!(grants(&admin, "create", "rolebindings") && grants(&admin, "list", "pods"));
    assert!(!grants(&edit, "create", "rolebindings"));
    // A new role labelled aggregate-to-view flows into view, edit and admin.
    create(
        &server,
        r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "widgets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
            "rules": [{"verbs": ["get", "list"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}"#,
    );
    for role in ["view", "edit", "admin"] {
        let aggregated = eventually(Duration::from_secs(5), || {
            grants(&rules_of(role), "list", "widgets").then_some(())
        });
        assert!(
            aggregated.is_some(),
            "{role} did not aggregate widgets-view"
        );
    }
    // And out again when it goes.
    ok(kubectl(&server).args(["delete", "clusterrole", "widgets-view"]));
    let removed = eventually(Duration::from_secs(5), || {
        (!grants(&rules_of("admin"), "list", "widgets")).then_some(())
    });
    assert!(removed.is_some());
    // The default bindings exist.
    let out = ok(kubectl(&server).args(["get", "clusterrolebinding", "-o", "name"]));
    for binding in [
        "cluster-admin",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
    ] {
        assert!(
            out.contains(&format!(
                "clusterrolebinding.rbac.authorization.k8s.io/{binding}\n"
            )),
            "{out}"
        );
    }
}
