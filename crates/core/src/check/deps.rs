//! `depends_on` as a graph: unknown names and cycles refused, and what a
//! failing check blocks.

use std::collections::{BTreeMap, BTreeSet};

/// Why a set of dependencies is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyError {
    /// A check depends on one that does not exist.
    Unknown {
        /// The dependent.
        check: String,
        /// The name that matches no check.
        missing: String,
    },
    /// A check depends on itself, through others or directly.
    Cycle {
        /// The cycle, first name repeated last.
        path: Vec<String>,
    },
}

/// The checks and what each depends on.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    on: BTreeMap<String, Vec<String>>,
}

impl Dependencies {
    /// Builds the graph, refusing unknown names and cycles.
    pub fn new<'a>(
        checks: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Self, Vec<DependencyError>> {
        let on: BTreeMap<String, Vec<String>> = checks
            .into_iter()
            .map(|(name, deps)| (name.to_string(), deps.to_vec()))
            .collect();
        let mut errors = Vec::new();
        for (name, deps) in &on {
            for d in deps {
                if !on.contains_key(d) {
                    errors.push(DependencyError::Unknown {
                        check: name.clone(),
                        missing: d.clone(),
                    });
                }
            }
        }
        let graph = Self { on };
        if errors.is_empty() {
            if let Some(path) = graph.cycle() {
                errors.push(DependencyError::Cycle { path });
            }
        }
        if errors.is_empty() {
            Ok(graph)
        } else {
            Err(errors)
        }
    }

    fn cycle(&self) -> Option<Vec<String>> {
        // Depth-first, colouring: 1 on the path, 2 done.
        let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
        let mut path: Vec<&str> = Vec::new();
        fn visit<'a>(
            g: &'a Dependencies,
            n: &'a str,
            colour: &mut BTreeMap<&'a str, u8>,
            path: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            match colour.get(n) {
                Some(2) => return None,
                Some(1) => {
                    let start = path.iter().position(|p| *p == n).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(n.to_string());
                    return Some(cycle);
                }
                _ => {}
            }
            colour.insert(n, 1);
            path.push(n);
            for d in g.on.get(n).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(c) = visit(g, d, colour, path) {
                    return Some(c);
                }
            }
            path.pop();
            colour.insert(n, 2);
            None
        }
        for n in self.on.keys() {
            if let Some(c) = visit(self, n, &mut colour, &mut path) {
                return Some(c);
            }
        }
        None
    }

    /// What `check` depends on directly.
    pub fn of(&self, check: &str) -> &[String] {
        self.on.get(check).map(Vec::as_slice).unwrap_or(&[])
    }

    /// For each check, the dependencies (direct or not) that are down
    /// according to `down`, nearest first: a non-empty list means blocked.
    pub fn blocked(&self, down: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for name in self.on.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = self.of(name).iter().map(String::as_str).collect();
            let mut by = Vec::new();
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                if down(d) {
                    by.push(d.to_string());
                }
                stack.extend(self.of(d).iter().map(String::as_str));
            }
            out.insert(name.clone(), by);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Result<Dependencies, Vec<DependencyError>> {
        let owned: Vec<(String, Vec<String>)> = edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        Dependencies::new(owned.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
    }

    #[test]
    fn unknown_names_and_cycles_are_refused() {
        assert_eq!(
            graph(&[("web", &["db"])]).err(),
            Some(vec![DependencyError::Unknown {
                check: "web".into(),
                missing: "db".into()
            }])
        );
        let err = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]).expect_err("cycle");
        assert!(
            matches!(&err[0], DependencyError::Cycle { path } if path.len() == 4),
            "{err:?}"
        );
        assert!(graph(&[("a", &["a"])]).is_err());
    }

    #[test]
    fn a_failing_dependency_blocks_its_dependents_through_the_chain() {
        let g = graph(&[
            ("lb", &["web"]),
            ("web", &["db"]),
            ("db", &[]),
            ("cache", &[]),
        ])
        .expect("graph");
        let blocked = g.blocked(|c| c == "db");
        assert_eq!(blocked["web"], vec!["db".to_string()]);
        assert_eq!(blocked["lb"], vec!["db".to_string()]);
        assert!(blocked["db"].is_empty());
        assert!(blocked["cache"].is_empty());
    }
}
