//! Template sets and the brand on SQLite (migration 6): one row per set,
//! keyed by its name, the set as JSON; the brand is the single row `id = 1`.
//! Writers validate before they store ([`TemplateStore`]'s contract), so a
//! read only parses.

use async_trait::async_trait;
use cartback_core::ports::{PortError, TemplateStore};
use cartback_core::template::{Brand, TemplateName, TemplateSet};
use rusqlite::{params, OptionalExtension};

use crate::sqlite::{db, from_json, to_json, ts, Database};

#[async_trait]
impl TemplateStore for Database {
    /// Every stored set, by name.
    async fn list_templates(&self) -> Result<Vec<TemplateSet>, PortError> {
        self.call(|conn| {
            let mut stmt = conn.prepare_cached("SELECT json FROM template_sets ORDER BY name").map_err(db)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
            rows.map(|row| from_json("template set", &row.map_err(db)?)).collect()
        })
        .await
    }

    async fn put_template(&self, set: &TemplateSet) -> Result<(), PortError> {
        let json = to_json("template set", set)?;
        let (name, now) = (set.name.to_string(), ts(self.clock().now()));
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO template_sets (name, json, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at",
                params![name, json, now],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn delete_template(&self, name: &TemplateName) -> Result<bool, PortError> {
        let name = name.to_string();
        self.call(move |conn| {
            let deleted = conn.execute("DELETE FROM template_sets WHERE name = ?1", [name]).map_err(db)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn brand(&self) -> Result<Option<Brand>, PortError> {
        self.call(|conn| {
            let json: Option<String> =
                conn.query_row("SELECT json FROM brand WHERE id = 1", [], |r| r.get(0)).optional().map_err(db)?;
            json.map(|json| from_json("brand", &json)).transpose()
        })
        .await
    }

    async fn put_brand(&self, brand: &Brand) -> Result<(), PortError> {
        let json = to_json("brand", brand)?;
        let now = ts(self.clock().now());
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO brand (id, json, updated_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET json = excluded.json, updated_at = excluded.updated_at",
                params![json, now],
            )
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}
