//! Which device a command is for: `?device=` (must be registered), or the only registered
//! device when it is omitted.

use super::error::ApiError;
use super::{Shared, blocking};
use crate::model::{DEVICE_ID_RULE, DeviceId};

/// Resolves the `device` parameter; 400 when it is malformed or ambiguous, 404 when unknown.
pub async fn device(param: Option<&str>, state: &Shared) -> Result<DeviceId, ApiError> {
    let devices = blocking(&state.ctx.store, |s| s.devices()).await?;
    match param {
        Some(name) => {
            let id = DeviceId::parse(name).ok_or_else(|| {
                ApiError::bad_request(format!("`device` must be {DEVICE_ID_RULE}."))
            })?;
            if devices.iter().any(|d| d.id == id) {
                Ok(id)
            } else {
                Err(ApiError::Missing(format!("There is no device named {id}.")))
            }
        }
        None => match devices.as_slice() {
            [only] => Ok(only.id.clone()),
            [] => Err(ApiError::bad_request(
                "No device is registered yet; add one with `rzmon device add <id>`.",
            )),
            many => {
                let names: Vec<&str> = many.iter().map(|d| d.id.as_str()).collect();
                Err(ApiError::bad_request(format!(
                    "Several devices are registered; choose one with ?device=: {}.",
                    names.join(", ")
                )))
            }
        },
    }
}
