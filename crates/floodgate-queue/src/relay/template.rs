//! Where a job's message goes: a subject or routing key written as a template over the job,
//! with `{kind}`, `{queue}`, `{key}` (the job's ordering key, `_` without one) and `{id}`.
//!
//! ```
//! use floodgate_queue::relay::Template;
//!
//! let t = Template::parse("orders.{kind}.{key}")?;
//! assert_eq!(t.render_parts("order.created", "events", Some("customer 42"), 7, true), "orders.order.created.customer_42");
//! assert!(Template::parse("orders.{nope}").is_err());
//! # Ok::<(), floodgate_queue::relay::TemplateError>(())
//! ```

use crate::Job;

/// A template that does not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder it does not know.
    #[error("unknown placeholder {{{0}}}: use {{kind}}, {{queue}}, {{key}} or {{id}}")]
    Unknown(String),
    /// A `{` without its `}`.
    #[error("a `{{` is not closed: write placeholders as {{kind}}")]
    Unclosed,
    /// Nothing to render.
    #[error("the template is empty")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Kind,
    Queue,
    Key,
    Id,
}

/// A parsed subject or routing key template over a job; see the [relay module](super).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or(TemplateError::Unclosed)? + open;
            parts.push(match &rest[open + 1..close] {
                "kind" => Part::Kind,
                "queue" => Part::Queue,
                "key" => Part::Key,
                "id" => Part::Id,
                other => return Err(TemplateError::Unknown(other.to_owned())),
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template {
            parts,
            source: source.to_owned(),
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether it names the job's ordering key.
    pub fn uses_key(&self) -> bool {
        self.parts.contains(&Part::Key)
    }

    /// Renders it for `job`; with `token`, each value is made one NATS subject token (`.`,
    /// `*`, `>` and whitespace in the ordering key become `_`; kinds and queues keep their
    /// dots, so `order.created` spans two tokens).
    pub fn render(&self, job: &Job, token: bool) -> String {
        self.render_parts(
            &job.kind,
            &job.queue,
            job.ordering_key.as_deref(),
            job.id.0,
            token,
        )
    }

    /// Renders it from the parts of a job (see [`render`](Self::render)).
    pub fn render_parts(
        &self,
        kind: &str,
        queue: &str,
        key: Option<&str>,
        id: i64,
        token: bool,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Kind => out.push_str(&clean(kind, token, false)),
                Part::Queue => out.push_str(&clean(queue, token, false)),
                Part::Key => out.push_str(&clean(key.unwrap_or("_"), token, true)),
                Part::Id => out.push_str(&id.to_string()),
            }
        }
        out
    }
}

fn clean(value: &str, token: bool, one_token: bool) -> String {
    if !token {
        return value.to_owned();
    }
    value
        .chars()
        .map(|c| match c {
            '*' | '>' => '_',
            '.' if one_token => '_',
            c if c.is_whitespace() => '_',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_placeholder() {
        let t = Template::parse("{queue}/{kind}/{key}/{id}").unwrap();
        assert_eq!(
            t.render_parts("a.b", "q", Some("k.1 *"), 9, false),
            "q/a.b/k.1 */9"
        );
        assert_eq!(t.render_parts("a.b", "q", None, 9, true), "q/a.b/_/9");
        assert_eq!(
            t.render_parts("a>b", "q", Some("k.1 *"), 9, true),
            "q/a_b/k_1__/9"
        );
        assert!(t.uses_key());
        assert!(!Template::parse("x").unwrap().uses_key());
    }

    #[test]
    fn refuses_what_it_cannot_render() {
        assert_eq!(Template::parse(""), Err(TemplateError::Empty));
        assert_eq!(Template::parse("a.{kind"), Err(TemplateError::Unclosed));
        assert_eq!(
            Template::parse("a.{Kind}"),
            Err(TemplateError::Unknown("Kind".into()))
        );
        let e = Template::parse("{x}").unwrap_err().to_string();
        assert!(e.contains("{kind}"), "{e}");
    }
}
