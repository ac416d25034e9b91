//! The building blocks of both seeded tenant generators: the name tables they draw from (shared
//! parts, each sandbox keeping its own order and additions so a seed gives the same tenant it
//! always gave), unique work e-mail addresses, and the random draws they share.

use std::collections::HashSet;

use rand::Rng;
use rand::rngs::StdRng;

/// A name table drawn from as one list: the concatenation of its parts. Sandboxes share parts
/// and keep their own between them, so each table keeps its length and order (and a seed keeps
/// drawing the same names).
pub struct Names(pub &'static [&'static [&'static str]]);

impl Names {
    pub fn len(&self) -> usize {
        self.0.iter().map(|part| part.len()).sum()
    }

    /// One name, uniformly over the whole table (one draw from `rng`).
    pub fn pick(&self, rng: &mut StdRng) -> &'static str {
        let mut index = rng.random_range(0..self.len());
        for part in self.0 {
            match part.get(index) {
                Some(name) => return name,
                None => index -= part.len(),
            }
        }
        unreachable!("the index is below the table's length")
    }
}

/// One item of `items`, uniformly (one draw from `rng`).
pub fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// Computing pioneers' first names, the people of [`PIONEER_SURNAMES`] and
/// [`LATER_PIONEER_SURNAMES`] (and a few between them).
pub const PIONEER_FIRST_NAMES: &[&str] = &[
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Niklaus",
    "Hedy",
    "Donald",
    "Joan",
    "Bjarne",
    "Shafi",
    "Leslie",
    "Anita",
    "Guido",
    "Karen",
    "James",
    "Lynn",
];

/// First names from around the world, for a tenant that looks like a real company's.
pub const WORLD_FIRST_NAMES: &[&str] = &[
    "Amara", "Kwame", "Ingrid", "Lars", "Sofia", "Mateo", "Aisha", "Omar", "Hannah", "Lukas",
];

/// The first computing pioneers' surnames.
pub const PIONEER_SURNAMES: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
    "Allen", "Dijkstra", "Perlman",
];

/// Later computing pioneers' surnames.
pub const LATER_PIONEER_SURNAMES: &[&str] = &[
    "Goldwasser",
    "Lamport",
    "Borg",
    "van Rossum",
    "Spärck Jones",
    "Gosling",
    "Conway",
];

/// Lowercase ASCII letters and digits of a name for an e-mail local part (`Spärck Jones` →
/// `sparckjones`, `O'Neill` → `oneill`): accents are dropped, everything else is left out.
pub fn ascii_slug(name: &str) -> String {
    name.chars()
        .filter_map(|c| match c {
            'ä' | 'á' | 'à' | 'Ä' => Some('a'),
            'ö' | 'ó' | 'Ö' => Some('o'),
            'ü' | 'ú' | 'Ü' => Some('u'),
            'é' | 'è' | 'ë' | 'É' => Some('e'),
            'í' => Some('i'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The local part of a work e-mail: the slugs of the names, dot-separated.
pub fn email_local_part(first: &str, last: &str) -> String {
    format!("{}.{}", ascii_slug(first), ascii_slug(last))
}

/// Work e-mail addresses in one domain, each handed out once: `first.last@domain`, then
/// `first.last2@domain`, `first.last3@domain`, … for namesakes.
pub struct Emails {
    domain: &'static str,
    used: HashSet<String>,
}

impl Emails {
    pub fn new(domain: &'static str, capacity: usize) -> Self {
        Self {
            domain,
            used: HashSet::with_capacity(capacity),
        }
    }

    pub fn unique(&mut self, first: &str, last: &str) -> String {
        let base = email_local_part(first, last);
        let local = (1..)
            .map(|n| match n {
                1 => base.clone(),
                n => format!("{base}{n}"),
            })
            .find(|candidate| self.used.insert(candidate.clone()))
            .expect("an unused numbered address always exists");
        format!("{local}@{}", self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_table_of_parts_draws_like_one_list() {
        const TABLE: Names = Names(&[&["a", "b"], &[], &["c"]]);
        assert_eq!(TABLE.len(), 3);
        let mut rng = StdRng::seed_from_u64(1);
        let mut flat = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            assert_eq!(TABLE.pick(&mut rng), pick(&mut flat, &["a", "b", "c"]));
        }
    }

    #[test]
    fn namesakes_get_numbered_addresses() {
        let mut emails = Emails::new("example.com", 4);
        assert_eq!(
            emails.unique("Karen", "Spärck Jones"),
            "karen.sparckjones@example.com"
        );
        assert_eq!(
            emails.unique("Karen", "Spärck Jones"),
            "karen.sparckjones2@example.com"
        );
        assert_eq!(
            emails.unique("Shaun", "O'Neill"),
            "shaun.oneill@example.com"
        );
    }
}
