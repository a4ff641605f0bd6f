//! Issuing keys: the only place a plaintext key is generated. The store receives the hash
//! and the display prefix; the caller receives the plaintext to show once.

use keyward_core::{KeyId, PlainKey};

use crate::{Actor, KeyMaterial, KeyRecord, KeySpec, Rotation, Store, StoreError, StoreResult};

fn material_for(key: &PlainKey) -> KeyMaterial {
    KeyMaterial {
        id: KeyId::generate(),
        hash: key.hash(),
        key_prefix: key.display_prefix(),
        prefix: key.key_prefix(),
    }
}

fn generate(prefix: &keyward_core::KeyPrefix) -> StoreResult<PlainKey> {
    PlainKey::generate(prefix).map_err(|error| {
        StoreError::Internal(format!("the OS random number generator failed: {error}"))
    })
}

/// Creates a key for `spec` and returns its plaintext (to be shown once) with its record.
pub async fn issue_key(
    store: &dyn Store,
    spec: &KeySpec,
    actor: &Actor,
) -> StoreResult<(PlainKey, KeyRecord)> {
    let prefix = spec
        .prefix
        .clone()
        .unwrap_or_else(|| spec.environment.default_prefix());
    let key = generate(&prefix)?;
    let record = store.create_key(spec, &material_for(&key), actor).await?;
    Ok((key, record))
}

/// Rotates key `id`: returns the new key's plaintext, the new record and the old record.
pub async fn rotate_key(
    store: &dyn Store,
    id: &KeyId,
    rotation: &Rotation,
    actor: &Actor,
) -> StoreResult<(PlainKey, KeyRecord, KeyRecord)> {
    let old = store.get_key(id).await?;
    let prefix = old
        .prefix
        .clone()
        .unwrap_or_else(|| old.environment.default_prefix());
    let key = generate(&prefix)?;
    let (new, old) = store
        .rotate_key(id, rotation, &material_for(&key), actor)
        .await?;
    Ok((key, new, old))
}

/// Creates an admin key and returns its plaintext (to be shown once) with its record.
/// Permissions are stored sorted, each once; an empty list is refused.
pub async fn issue_admin_key(
    store: &dyn Store,
    name: &str,
    permissions: &[keyward_core::Permission],
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    actor: &Actor,
) -> StoreResult<(PlainKey, crate::AdminKeyRecord)> {
    let mut permissions = permissions.to_vec();
    permissions.sort();
    permissions.dedup();
    if permissions.is_empty() {
        return Err(StoreError::invalid(
            "permissions",
            "give at least one permission",
        ));
    }
    let key = generate(
        &keyward_core::KeyPrefix::parse(keyward_core::key::ADMIN_KEY_PREFIX)
            .map_err(|e| StoreError::Internal(e.to_string()))?,
    )?;
    let new = crate::NewAdminKey {
        name: name.to_owned(),
        permissions,
        expires_at,
        hash: key.hash(),
        key_prefix: key.display_prefix(),
    };
    let record = store.create_admin_key(&new, actor).await?;
    Ok((key, record))
}
