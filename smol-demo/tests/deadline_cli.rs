//! `tailguard-demo deadline` as a user runs it: flags refused before any work (exit 2, naming
//! the flag), `--sim --json` keyed by mode, the help with its examples and exit statuses.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tailguard-demo");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn refused_flags_name_themselves_and_exit_2() {
    for (args, flag) in [
        (&["deadline", "--sim", "--calls", "0"][..], "--calls"),
        (&["deadline", "--rate", "-1"][..], "--rate"),
        (&["deadline", "--deadline", "0ms"][..], "--deadline"),
        (&["deadline", "--duration", "0s"][..], "--duration"),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn the_simulation_prints_json_keyed_by_mode() {
    let out = run(&["deadline", "--sim", "--calls", "500", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for mode in ["blind", "aware"] {
        for key in ["late_pct", "wasted_pct", "success_pct", "attempts"] {
            assert!(json[mode][key].is_number(), "{mode}.{key}: {json}");
        }
        assert_eq!(json[mode]["calls"], 500, "{json}");
    }
    let help = String::from_utf8_lossy(&run(&["deadline", "--help"]).stdout).into_owned();
    assert!(
        help.contains("Examples") && help.contains("tailguard-demo deadline --sim"),
        "{help}"
    );
    assert!(help.contains("Exit status"), "{help}");
}
