//! Listing cursors: opaque, tamper-evident and bound to the listing that issued them. A
//! cursor is the position (the last item's id) and an HMAC-SHA256 over the listing's
//! filters and that position, under a random key kept in `settings` (shared by every node
//! and the CLI). So a cursor from another user's listing, an altered one, or an id typed in
//! by hand is refused (422 naming `cursor`) before anything is looked up, and a cursor
//! stays valid when its item changes state.

use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha2::Sha256;

use super::Backend;
use crate::{StoreError, StoreResult};

const SETTING: &str = "cursor_key";
/// Bytes of the MAC kept in a cursor (128 bits).
const MAC_BYTES: usize = 16;

/// The sealing key, created once per database.
async fn key(store: &Backend) -> StoreResult<&[u8; 32]> {
    store
        .cursor_key
        .get_or_try_init(|| async {
            let mut fresh = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut fresh)
                .map_err(|error| StoreError::corrupt("cursor key", error))?;
            crate::AdminStore::insert_setting_if_absent(store, SETTING, &hex::encode(fresh))
                .await?;
            let stored = crate::AdminStore::get_setting(store, SETTING)
                .await?
                .ok_or_else(|| StoreError::corrupt("cursor key", "missing after insert"))?;
            let mut key = [0u8; 32];
            hex::decode_to_slice(stored, &mut key)
                .map_err(|error| StoreError::corrupt("cursor key", error))?;
            Ok(key)
        })
        .await
}

fn mac(key: &[u8; 32], listing: &str, position: &str) -> [u8; MAC_BYTES] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; MAC_BYTES];
    };
    mac.update(listing.as_bytes());
    mac.update(b"\0");
    mac.update(position.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; MAC_BYTES];
    out.copy_from_slice(&full[..MAC_BYTES]);
    out
}

/// The cursor continuing `listing` after `position`.
pub(crate) async fn seal(store: &Backend, listing: &str, position: &str) -> StoreResult<String> {
    let key = key(store).await?;
    Ok(format!(
        "{}.{}",
        hex::encode(position),
        hex::encode(mac(key, listing, position))
    ))
}

/// The position a cursor of `listing` names; 422 (`cursor`) for anything it did not issue.
pub(crate) async fn open(store: &Backend, listing: &str, cursor: &str) -> StoreResult<String> {
    let bad = super::bad_cursor;
    let (position, tag) = cursor.split_once('.').ok_or_else(bad)?;
    let position = hex::decode(position).map_err(|_| bad())?;
    let position = String::from_utf8(position).map_err(|_| bad())?;
    let mut given = [0u8; MAC_BYTES];
    hex::decode_to_slice(tag, &mut given).map_err(|_| bad())?;
    let key = key(store).await?;
    let expected = mac(key, listing, &position);
    // Constant time: a timing difference must not guide a forger byte by byte.
    let differ = expected
        .iter()
        .zip(given.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differ != 0 {
        return Err(bad());
    }
    Ok(position)
}
