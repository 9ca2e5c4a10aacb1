//! The operator against a real kube-apiserver (and kube-controller-manager):
//! `scripts/test.d/40-operator.sh` starts the control plane, applies the CRD
//! and runs this with `--ignored`. Without `KUBECONFIG` the test fails rather
//! than passing vacuously.
//!
//! No kubelet runs, so pods never start: the test checks the objects, owner
//! references, status and conditions, not running containers.
//!
//! On a cluster where the operator already runs (kind + Helm), set
//! `RESIZER_OPERATOR_EXTERNAL=1`: the test then starts no operator of its own
//! and leaves out the leader-takeover part, which needs to kill processes.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, Resource, ResourceExt};
use operator::crd::ResizeDeployment;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SAMPLE: &str = include_str!("../../charts/resizer/examples/resizedeployment.yaml");
const LEASE_SECONDS: u64 = 6;

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// Runs kubectl with `stdin`, returning (success, stdout + stderr).
fn kubectl_run(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(kubectl())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH or in $KUBECTL");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn kubectl_ok(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, text) = kubectl_run(args, stdin);
    assert!(ok, "kubectl {args:?} failed: {text}");
    text
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Operator {
    identity: String,
    port: u16,
    child: Child,
}

impl Operator {
    fn start(identity: &str, lease_namespace: &str) -> Self {
        let port = free_port();
        let log = std::fs::File::create(std::env::temp_dir().join(format!("operator-{identity}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_operator"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--lease-namespace", lease_namespace])
            .args(["--lease-seconds", &LEASE_SECONDS.to_string(), "--identity", identity])
            // Nothing listens there: the queue is unreachable, deterministically and fast.
            .args(["--nats-url", "nats://127.0.0.1:1", "--nats-timeout", "500ms"])
            .env("RUST_LOG", "info,operator=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("operator binary");
        Self { identity: identity.into(), port, child }
    }

    async fn metric(&self, name: &str) -> Option<f64> {
        let body = http_get(self.port, "/metrics").await?;
        body.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))?.rsplit(' ').next()?.parse().ok()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare HTTP/1.0 GET, enough for the operator's own endpoints.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    Some(buf.split_once("\r\n\r\n")?.1.to_owned())
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn get<K>(client: &Client, ns: &str, name: &str) -> Option<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    Api::<K>::namespaced(client.clone(), ns).get_opt(name).await.unwrap()
}

async fn assert_owned<K>(client: &Client, ns: &str, name: &str, uid: &str)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let what = format!("{} {name}", K::kind(&()));
    let obj: K = eventually(&what, Duration::from_secs(30), || get::<K>(client, ns, name)).await;
    let owners = obj.meta().owner_references.clone().unwrap_or_default();
    assert!(
        owners.iter().any(|o| o.uid == uid && o.controller == Some(true) && o.kind == "ResizeDeployment"),
        "{what} is not controlled by the ResizeDeployment: {owners:?}"
    );
}

fn condition(rd: &ResizeDeployment, type_: &str) -> Option<(String, String)> {
    let c = rd.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
#[ignore = "needs a control plane: run by scripts/test.d/40-operator.sh"]
async fn operator_against_a_real_apiserver() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: this test runs against the control plane started by scripts/test.d/40-operator.sh"
    );
    let client = Client::try_default().await.expect("kubeconfig");
    let ns = format!("rd-it-{}", std::process::id());
    kubectl_ok(&["create", "namespace", &ns], None);

    let external = std::env::var("RESIZER_OPERATOR_EXTERNAL").is_ok_and(|v| v == "1");
    let a = (!external).then(|| Operator::start("operator-a", &ns));

    // Create with kubectl; the operator fills in every child.
    kubectl_ok(&["apply", "-n", &ns, "-f", "-"], Some(SAMPLE));
    let rds: Api<ResizeDeployment> = Api::namespaced(client.clone(), &ns);
    let rd = eventually("status.observedGeneration = 1", Duration::from_secs(60), || async {
        let rd = rds.get("photos").await.ok()?;
        (rd.status.as_ref()?.observed_generation == Some(1)).then_some(rd)
    })
    .await;
    let uid = rd.uid().unwrap();
    for name in ["photos-api", "photos-worker", "photos-auth-cache", "photos-usage-aggregator"] {
        assert_owned::<Deployment>(&client, &ns, name, &uid).await;
    }
    assert_owned::<StatefulSet>(&client, &ns, "photos-nats", &uid).await;
    assert_owned::<ConfigMap>(&client, &ns, "photos-nats", &uid).await;
    for name in ["photos-nats", "photos-api", "photos-auth-cache", "photos-usage-aggregator"] {
        assert_owned::<Service>(&client, &ns, name, &uid).await;
    }
    for name in ["photos-nats", "photos-api"] {
        assert_owned::<PodDisruptionBudget>(&client, &ns, name, &uid).await;
    }
    for name in ["photos-nats", "photos-api", "photos-worker", "photos-auth-cache", "photos-usage-aggregator"] {
        assert_owned::<NetworkPolicy>(&client, &ns, name, &uid).await;
    }
    for name in ["photos-api", "photos-worker", "photos-nats", "photos-auth-cache", "photos-usage-aggregator"] {
        assert_owned::<ServiceAccount>(&client, &ns, name, &uid).await;
    }
    let headless: Service = get(&client, &ns, "photos-nats").await.unwrap();
    assert_eq!(headless.spec.unwrap().publish_not_ready_addresses, Some(true));

    // Status: the capacity math and the conditions.
    let status = rd.status.clone().unwrap();
    let cap = status.capacity.clone().expect("capacity in status");
    assert_eq!(cap.baseline_workers, 30, "1,000 req/s × 1.2 / (10 × 4)");
    assert_eq!(cap.api_replicas, 2);
    // Here the queue is out of reach by construction; on a real cluster it comes up and is read.
    if !external {
        assert_eq!(condition(&rd, "QueueHealthy"), Some(("False".into(), "Unreachable".into())));
        assert_eq!(condition(&rd, "Ready").map(|c| c.0), Some("False".into()), "no kubelet: nothing is ready");
    }
    for c in ["Ready", "Progressing", "Degraded", "QueueHealthy", "Scaling"] {
        assert!(condition(&rd, c).is_some(), "condition {c} missing: {:?}", status.conditions);
    }
    if !external {
        let workers: Deployment = get(&client, &ns, "photos-worker").await.unwrap();
        assert_eq!(workers.spec.replicas, Some(30), "unreachable queue on a new fleet: the baseline");
    }
    let printed = kubectl_ok(&["get", "rd", "photos", "-n", &ns], None);
    assert!(printed.contains("QUEUE-LEADER") && printed.contains("DESIRED"), "{printed}");

    // Edit the spec: the children follow.
    kubectl_ok(
        &[
            "patch",
            "rd",
            "photos",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"sla":{"targetRequestsPerSecond":20000},"capacity":{"maxWorkers":1000},"api":{"ingress":{"host":"img.example.com"}}}}"#,
        ],
        None,
    );
    eventually("api replicas follow the target rate", Duration::from_secs(30), || async {
        let d: Deployment = get(&client, &ns, "photos-api").await?;
        // 20,000 × 1.2 / 5,000 = 4.8 → 5
        (d.spec.replicas == Some(5)).then_some(())
    })
    .await;
    assert_owned::<Ingress>(&client, &ns, "photos-api", &uid).await;
    let ingress: Ingress = get(&client, &ns, "photos-api").await.unwrap();
    let paths: Vec<(String, String)> = ingress.spec.unwrap().rules.unwrap()[0]
        .http
        .as_ref()
        .unwrap()
        .paths
        .iter()
        .map(|p| (p.path.clone().unwrap_or_default(), p.backend.service.as_ref().unwrap().name.clone()))
        .collect();
    assert_eq!(
        paths,
        [("/v1/usage".into(), "photos-usage-aggregator".into()), ("/".into(), "photos-api".into())],
        "the usage API before the api"
    );

    // Dropped from the spec: the Ingress goes, and stays gone.
    kubectl_ok(
        &["patch", "rd", "photos", "-n", &ns, "--type=merge", "-p", r#"{"spec":{"api":{"ingress":null}}}"#],
        None,
    );
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    eventually("the dropped Ingress is deleted", Duration::from_secs(30), || async {
        ingresses.get_opt("photos-api").await.ok()?.is_none().then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    eventually("a Pruned event", Duration::from_secs(30), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.iter().any(|e| e.reason.as_deref() == Some("Pruned")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(ingresses.get_opt("photos-api").await.unwrap().is_none(), "the Ingress came back");
    for name in ["photos-api", "photos-usage-aggregator"] {
        assert_owned::<Service>(&client, &ns, name, &uid).await;
    }
    if !external {
        let workers: Deployment = get(&client, &ns, "photos-worker").await.unwrap();
        assert_eq!(workers.spec.replicas, Some(30), "queue unreachable: workers are left as they are");
    }

    // A deleted child comes back; a hand edit is reverted.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let old_uid = cms.get("photos-nats").await.unwrap().uid();
    cms.delete("photos-nats", &DeleteParams::default()).await.unwrap();
    eventually("the ConfigMap is recreated", Duration::from_secs(30), || async {
        let cm = cms.get_opt("photos-nats").await.ok()??;
        (cm.uid() != old_uid).then_some(())
    })
    .await;
    kubectl_ok(&["scale", "deployment", "photos-api", "-n", &ns, "--replicas=9"], None);
    eventually("the api Deployment is scaled back", Duration::from_secs(30), || async {
        let d: Deployment = get(&client, &ns, "photos-api").await?;
        (d.spec.replicas == Some(5)).then_some(())
    })
    .await;

    // What CEL can express, the apiserver refuses with the rule's message.
    let bad_range = SAMPLE.replace("minWorkers: 2", "minWorkers: 500");
    let (ok, text) = kubectl_run(&["apply", "-n", &ns, "-f", "-"], Some(&bad_range));
    assert!(!ok && text.contains("minWorkers must not exceed maxWorkers"), "{text}");
    let even_queue = SAMPLE.replace("replicas: 3", "replicas: 2");
    let (ok, text) = kubectl_run(&["apply", "-n", &ns, "-f", "-"], Some(&even_queue));
    assert!(!ok && text.contains("queue replicas must be odd"), "{text}");

    // What CEL cannot express: Ready=False with a reason, an Event, and the last good children kept.
    kubectl_ok(
        &[
            "patch",
            "rd",
            "photos",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"sla":{"targetRequestsPerSecond":900000}}}"#,
        ],
        None,
    );
    eventually("Ready=False InvalidSpec", Duration::from_secs(30), || async {
        let rd = rds.get("photos").await.ok()?;
        (condition(&rd, "Ready") == Some(("False".into(), "InvalidSpec".into()))).then_some(())
    })
    .await;
    eventually("an InvalidSpec event", Duration::from_secs(30), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.iter().any(|e| e.reason.as_deref() == Some("InvalidSpec")).then_some(())
    })
    .await;
    let api: Deployment = get(&client, &ns, "photos-api").await.unwrap();
    assert_eq!(api.spec.replicas, Some(5), "last good children kept");
    kubectl_ok(
        &[
            "patch",
            "rd",
            "photos",
            "-n",
            &ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"sla":{"targetRequestsPerSecond":1000}}}"#,
        ],
        None,
    );
    eventually("valid again", Duration::from_secs(30), || async {
        let d: Deployment = get(&client, &ns, "photos-api").await?;
        (d.spec.replicas == Some(2)).then_some(())
    })
    .await;

    if let Some(a) = a {
        leader_takeover(&client, &ns, a).await;
    }

    // Garbage collection by kube-controller-manager through the owner references.
    kubectl_ok(&["delete", "rd", "photos", "-n", &ns, "--wait=true"], None);
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    eventually("children garbage-collected", Duration::from_secs(60), || async {
        let left = deployments.list(&ListParams::default()).await.ok()?.items.len()
            + sas.list(&ListParams::default().labels("app.kubernetes.io/instance=photos")).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}

/// Two replicas: only the Lease holder reconciles; the other takes over when it is killed.
async fn leader_takeover(client: &Client, ns: &str, mut a: Operator) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity);
    assert_eq!(holder(leases.get("resizer-operator").await.unwrap()).as_deref(), Some("operator-a"));
    let b = Operator::start("operator-b", ns);
    eventually("operator-b serves metrics", Duration::from_secs(30), || b.metric("resizer_operator_leader")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.metric("resizer_operator_leader").await, Some(0.0));
    assert_eq!(b.metric("resizer_operator_reconciles_total").await, Some(0.0), "a standby must not reconcile");
    assert_eq!(a.metric("resizer_operator_leader").await, Some(1.0));

    let killed = Instant::now();
    a.child.kill().unwrap(); // SIGKILL: no release, the Lease must expire
    a.child.wait().unwrap();
    eventually("operator-b holds the Lease", Duration::from_secs(LEASE_SECONDS * 3), || async {
        (holder(leases.get("resizer-operator").await.ok()?)? == b.identity).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    println!("takeover after SIGKILL of the leader: {takeover:?}");
    // Worst case: the kill lands right after a renewal (a full lease left), then
    // kube-lease-manager waits up to 1 s at random before taking an expired lease.
    assert!(
        takeover <= Duration::from_secs(LEASE_SECONDS + 2),
        "takeover took {takeover:?}, lease is {LEASE_SECONDS}s"
    );
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.delete("photos-worker", &DeleteParams::default()).await.unwrap();
    eventually("the new leader recreates a deleted child", Duration::from_secs(30), || async {
        sas.get_opt("photos-worker").await.ok()?.map(|_| ())
    })
    .await;
}
