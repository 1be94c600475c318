//! Device passwords in an external broker's form (Mosquitto's PBKDF2-SHA512), kept beside the
//! device's own keyed hash so `rzmon broker-config` can write a password file at any time.

use super::{Result, Store};

impl Store {
    /// `false` if there is no such device.
    pub fn set_broker_hash(&self, id: &str, hash: &str) -> Result<bool> {
        self.with_conn(|c| {
            let n = c.execute(
                "UPDATE devices SET broker_hash = ?2 WHERE id = ?1",
                (id, hash),
            )?;
            Ok(n > 0)
        })
    }

    /// Enabled devices by id with their broker hash (`None`: added before rzmon kept it).
    pub fn broker_accounts(&self) -> Result<Vec<(String, Option<String>)>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, broker_hash FROM devices WHERE enabled = 1 ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }
}
