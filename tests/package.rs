//! The Debian package: `cargo deb` builds it (from the binary these tests use) and it
//! holds the binary, the unit, the example configuration as a conffile in /etc/cryowatch,
//! the docs, and maintainer scripts that create the service user.

mod common;

use std::process::Command;

use common::tests_dir;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (bash tests/run.sh installs cargo-deb and dpkg-deb comes with Debian)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_builds_and_holds_what_an_installation_needs() {
    let dir = tempfile::tempdir().expect("dir");
    let root = tests_dir().join("..");
    // --no-build with the dev profile packs the binary this test run built (a release
    // build is what `cargo deb` makes by default for real releases).
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["deb", "--no-build", "--profile", "dev", "--quiet", "-o"])
        .arg(dir.path()));
    let deb = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was written");
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/cryowatch",
        "./lib/systemd/system/cryowatch.service",
        "./etc/cryowatch/cryowatch.toml",
        "./usr/share/doc/cryowatch/README.md",
        "./usr/share/doc/cryowatch/examples/cryowatch.example.toml",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    let binary = contents
        .lines()
        .find(|l| l.ends_with("./usr/bin/cryowatch"))
        .unwrap_or_default();
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");
    let config = contents
        .lines()
        .find(|l| l.ends_with("./etc/cryowatch/cryowatch.toml"))
        .unwrap_or_default();
    assert!(
        config.starts_with("-rw-r-----"),
        "the configuration holds secrets' names: {config}"
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(
        info.contains("Package: cryowatch") && info.contains("adduser"),
        "{info}"
    );
    let package = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package"));
    assert_eq!(package.trim(), "cryowatch");
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(
        postinst.contains("adduser --system") && postinst.contains("dialout"),
        "{postinst}"
    );
    let listed = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(listed.trim(), "/etc/cryowatch/cryowatch.toml");
}
