//! Shared by the image tests (images.rs, filter_image.rs): a small Dockerfile parser and readers
//! of the workspace's Cargo.toml and Makefile. Each test crate uses a part of it.
#![allow(dead_code)]

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

pub type TestResult = Result<(), Box<dyn Error>>;

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn read(relative: &str) -> Result<String, Box<dyn Error>> {
    let path = workspace().join(relative);
    fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

/// One Dockerfile instruction: keyword (upper case) and its raw arguments.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

impl Instruction {
    /// Whitespace-separated words, with `--flag=value` options split off.
    pub fn flags_and_words(&self) -> (Vec<&str>, Vec<&str>) {
        self.args
            .split_whitespace()
            .partition(|word| word.starts_with("--"))
    }
}

/// A build stage: its FROM line and the instructions after it.
#[derive(Debug)]
pub struct Stage {
    pub from: String,
    pub name: Option<String>,
    pub instructions: Vec<Instruction>,
}

impl Stage {
    pub fn all(&self, keyword: &str) -> Vec<&Instruction> {
        self.instructions
            .iter()
            .filter(|i| i.keyword == keyword)
            .collect()
    }
}

/// Parses a Dockerfile into stages: joins `\` continuations, drops comments and parser directives.
pub fn parse_dockerfile(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            logical.push(std::mem::take(&mut current));
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical {
        let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = Instruction {
            keyword: keyword.to_uppercase(),
            args: args.trim().to_string(),
        };
        if instruction.keyword == "FROM" {
            let (_, words) = instruction.flags_and_words();
            let name = match words.as_slice() {
                [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                from: words.first().map(|w| w.to_string()).unwrap_or_default(),
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    stages
}

pub fn dockerfile(name: &str) -> Result<Vec<Stage>, Box<dyn Error>> {
    let stages = parse_dockerfile(&read(name)?);
    if stages.len() < 2 {
        return Err(format!(
            "{name}: expected a multi-stage build, found {} stage(s)",
            stages.len()
        )
        .into());
    }
    Ok(stages)
}

/// `COPY` sources of the build context (instructions without `--from`), and their destination.
pub fn context_copies(stage: &Stage) -> Vec<(Vec<String>, String)> {
    stage
        .all("COPY")
        .into_iter()
        .filter_map(|copy| {
            let (flags, words) = copy.flags_and_words();
            if flags.iter().any(|f| f.starts_with("--from")) {
                return None;
            }
            let (dest, sources) = words.split_last()?;
            Some((
                sources.iter().map(|s| s.to_string()).collect(),
                dest.to_string(),
            ))
        })
        .collect()
}

/// Workspace members from the root Cargo.toml (`members = [...]`).
pub fn workspace_members() -> Result<Vec<String>, Box<dyn Error>> {
    let manifest = read("Cargo.toml")?;
    let start = manifest
        .find("members")
        .ok_or("root Cargo.toml has no members")?;
    let open = start + manifest[start..].find('[').ok_or("members: no [")?;
    let close = open + manifest[open..].find(']').ok_or("members: no ]")?;
    Ok(manifest[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect())
}

/// A `NAME := value` assignment in the Makefile.
pub fn make_var(name: &str) -> Result<String, Box<dyn Error>> {
    let makefile = read("Makefile")?;
    makefile
        .lines()
        .find_map(|line| {
            let (lhs, rhs) = line.split_once(":=")?;
            (lhs.trim() == name).then(|| rhs.trim().to_string())
        })
        .ok_or_else(|| format!("Makefile does not define {name} :=").into())
}

pub fn dockerignore() -> Result<Vec<String>, Box<dyn Error>> {
    Ok(read(".dockerignore")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches("**/")
                .trim_end_matches('/')
                .to_string()
        })
        .collect())
}

/// The Makefile's logical lines (backslash continuations joined).
pub fn makefile_lines() -> Result<Vec<String>, Box<dyn Error>> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in read("Makefile")?.lines() {
        if let Some(body) = line.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(line);
            lines.push(std::mem::take(&mut current));
        }
    }
    Ok(lines)
}

pub fn normalize(words: &str) -> String {
    words.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text between `from` and `to` in `haystack`.
pub fn between<'a>(haystack: &'a str, from: &str, to: &str) -> Option<&'a str> {
    let start = haystack.find(from)?;
    let end = start + haystack[start..].find(to)?;
    Some(&haystack[start..end])
}

/// `key="value"` pairs of every LABEL instruction in a stage (values may hold spaces).
pub fn labels(stage: &Stage) -> Result<Vec<(String, String)>, Box<dyn Error>> {
    let mut pairs = Vec::new();
    for label in stage.all("LABEL") {
        let mut rest = label.args.trim();
        while !rest.is_empty() {
            let (key, after) = rest
                .split_once("=\"")
                .ok_or_else(|| format!("LABEL {}: expected key=\"value\"", label.args))?;
            let (value, tail) = after
                .split_once('"')
                .ok_or_else(|| format!("LABEL {}: unterminated value", label.args))?;
            pairs.push((key.trim().to_string(), value.to_string()));
            rest = tail.trim_start();
        }
    }
    Ok(pairs)
}
