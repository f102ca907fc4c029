//! `pdns-sensor completions`: the bash script is valid bash and completes
//! commands, options and option values through the function it registers,
//! as bash's programmable completion calls it; the zsh and fish scripts
//! are generated and name every command.

use std::process::Command;

const SENSOR: &str = env!("CARGO_BIN_EXE_pdns-sensor");

fn script(shell: &str) -> String {
    let out = Command::new(SENSOR)
        .args(["completions", "--shell", shell])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn bash(script_text: &str, program: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pdns-sensor.bash");
    std::fs::write(&file, script_text).unwrap();
    Command::new("bash")
        .args(["--noprofile", "--norc", "-c", program, "bash"])
        .arg(&file)
        .output()
        .expect("bash must be installed")
}

/// What the registered completion function offers for the words typed
/// (the last one being completed), one candidate per line.
fn complete(words: &[&str]) -> Vec<String> {
    // Bash calls the function with the command name, the word being
    // completed and the word before it, with COMP_WORDS/COMP_CWORD set.
    let program = format!(
        r#"source "$1" || exit 3
spec=$(complete -p pdns-sensor) || exit 4
func=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")
[ -n "$func" ] || exit 5
COMP_WORDS=({words})
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$func" pdns-sensor "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = bash(&script("bash"), &program);
    assert!(
        out.status.success(),
        "completing {words:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_script_is_valid_bash() {
    let out = bash(&script("bash"), r#"bash -n "$1""#);
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bash_completes_command_names() {
    assert_eq!(complete(&["pdns-sensor", "ru"]), ["run"]);
    let all = complete(&["pdns-sensor", ""]);
    for command in [
        "run",
        "ingest",
        "dump",
        "serve",
        "import-zeek",
        "import-bro-pdns",
        "completions",
    ] {
        assert!(all.iter().any(|c| c == command), "{command} in {all:?}");
    }
}

/// After a command name, that command's options (clap_complete's bash
/// script needs `fix_bash_states` for this with a hyphenated program name).
#[test]
fn bash_completes_options_and_their_values() {
    assert_eq!(complete(&["pdns-sensor", "run", "--fil"]), ["--filter"]);
    assert_eq!(
        complete(&["pdns-sensor", "run", "--filter", ""]),
        ["auto", "ebpf", "classic"]
    );
    assert_eq!(
        complete(&["pdns-sensor", "completions", "--shell", ""]),
        ["bash", "zsh", "fish"]
    );
}

#[test]
fn zsh_and_fish_scripts_name_every_command() {
    for shell in ["zsh", "fish"] {
        let text = script(shell);
        for command in [
            "run",
            "ingest",
            "dump",
            "serve",
            "import-zeek",
            "import-bro-pdns",
        ] {
            assert!(text.contains(command), "{shell}: {command}");
        }
    }
    assert!(script("zsh").starts_with("#compdef pdns-sensor"));
}

#[test]
fn an_unknown_shell_is_an_error_naming_the_choices() {
    let out = Command::new(SENSOR)
        .args(["completions", "--shell", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
    assert!(stderr.contains("bash, zsh, fish"), "{stderr}");
}
