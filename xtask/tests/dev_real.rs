//! Real dev-stack checks that need Docker: a host port already taken is refused before anything is created,
//! naming the port, its holder and the variable to change. Run with
//! `cargo test -p xtask --test dev_real -- --ignored --nocapture` (CI's `cargo xtask ci` does).

use std::net::TcpListener;

mod common;
use common::{text, xtask_env};

#[test]
#[ignore = "needs Docker and the offline images (cargo xtask dev-up once)"]
fn a_taken_host_port_is_named_before_anything_starts() {
    let project = "drydock-porttest";
    // Something else holds a port the stack wants: this test process.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let mut env = vec![("DRYDOCK_PROJECT", project), ("DRYDOCK_APP_PORT", port.as_str())];
    for other in [
        "DRYDOCK_API_PORT",
        "DRYDOCK_API_METRICS_PORT",
        "DRYDOCK_FRONTEND_PORT",
        "DRYDOCK_POSTGRES_PORT",
        "DRYDOCK_REDIS_PORT",
    ] {
        env.push((other, "0"));
    }
    let out = xtask_env(&["dev-up"], &env);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&format!("127.0.0.1:{port}")), "the port is named: {all}");
    assert!(
        all.contains(&format!("process {}", std::process::id())),
        "its holder is named: {all}"
    );
    assert!(
        all.contains("DRYDOCK_APP_PORT"),
        "the variable to change is named: {all}"
    );
    assert!(all.contains("nothing was started"), "{all}");
    // Nothing was created for the project.
    let ps = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .output()
        .unwrap();
    assert!(ps.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ps.stdout).trim(),
        "",
        "containers were created: {all}"
    );
    drop(holder);
}
