//! The filters shared by the audit log and the message log
//! (`?user=&ip=&room=&action=&from=&to=&q=&page=&per_page=`), turned into a
//! parameterised WHERE clause. Values are bound, never spliced into SQL.

use rusqlite::types::Value;

pub const DEFAULT_PER_PAGE: u32 = 50;
pub const MAX_PER_PAGE: u32 = 200;

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A user id, or a username.
    pub user: Option<String>,
    pub ip: Option<String>,
    pub room: Option<String>,
    pub action: Option<String>,
    /// Milliseconds since the epoch, inclusive.
    pub from: Option<i64>,
    /// Milliseconds since the epoch, inclusive.
    pub to: Option<i64>,
    /// Text searched for anywhere in the entry.
    pub q: Option<String>,
    pub page: u32,
    pub per_page: u32,
}

impl Filter {
    pub fn limit(&self) -> i64 {
        i64::from(self.per_page.clamp(1, MAX_PER_PAGE))
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page.max(1) - 1) * self.limit()
    }
}

/// A WHERE clause under construction, with its bound values.
#[derive(Debug, Default)]
pub struct Where {
    clauses: Vec<String>,
    pub params: Vec<Value>,
}

impl Where {
    /// Adds `clause`, in which every `?` takes the next of `values`.
    pub fn and(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) -> &mut Self {
        self.clauses.push(clause.to_owned());
        self.params.extend(values);
        self
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

/// A `LIKE` pattern matching `text` anywhere, with its wildcards escaped
/// (used with `ESCAPE '\'`).
pub fn contains_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn paging_is_clamped() {
        let f = Filter {
            page: 0,
            per_page: 1000,
            ..Filter::default()
        };
        assert_eq!((f.limit(), f.offset()), (200, 0));
        let f = Filter {
            page: 3,
            per_page: 10,
            ..Filter::default()
        };
        assert_eq!((f.limit(), f.offset()), (10, 20));
    }
}
