//! One source blob, read once, streamed to every target that lacks it.
//!
//! Each target's upload reads from its own bounded channel, so a slow target
//! slows the others only by what the channels hold; a target whose upload fails
//! is dropped from the stream and the others finish. The source stream is hashed
//! and counted as it passes: a size or digest that does not match turns into an
//! error item on every channel, which aborts the uploads before they commit. A
//! source connection that breaks mid-blob is resumed with a Range request.

use crate::registry::client::{RegistryClient, UploadMode, UploadSession, receiver_stream};
use crate::registry::digest::Digest;
use crate::registry::error::RegistryError;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

/// Pieces buffered per target: with [`PIECE_BYTES`], at most 1 MiB per target
/// and blob, whatever sizes the source connection reads in (HTTP/1.1 reads
/// grow to 400 KiB).
const CHANNEL_CHUNKS: usize = 16;
/// The largest piece sent down a channel; larger source chunks are split
/// (without copying: the pieces share the chunk's memory).
const PIECE_BYTES: usize = 64 << 10;

/// One upload destination of a blob.
pub struct Sink {
    pub client: RegistryClient,
    pub session: UploadSession,
}

/// The outcome of streaming one blob.
pub struct FanOut {
    /// Bytes read from the source, resumed reads included.
    pub source_bytes: u64,
    /// One result per sink, in the order given.
    pub results: Vec<Result<(), RegistryError>>,
}

fn io_error(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// Streams `digest` (`size` bytes) from `source`/`repository` into every sink.
pub async fn stream_blob(
    source: &RegistryClient,
    repository: &str,
    digest: &Digest,
    size: u64,
    sinks: Vec<Sink>,
) -> FanOut {
    let mut senders = Vec::new();
    let mut uploads = Vec::new();
    for sink in sinks {
        let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHANNEL_CHUNKS);
        let digest = digest.clone();
        uploads.push(tokio::spawn(async move {
            let body = receiver_stream(receiver);
            match sink.client.upload_mode() {
                UploadMode::Monolithic => {
                    sink.client
                        .upload_monolithic(sink.session, &digest, size, body)
                        .await
                }
                UploadMode::Chunked { part_size } => {
                    sink.client
                        .upload_chunked(sink.session, &digest, size, part_size, Box::pin(body))
                        .await
                }
            }
        }));
        senders.push(Some(sender));
    }

    let (source_bytes, outcome) = read_source(source, repository, digest, size, &mut senders).await;
    if let Err(error) = &outcome {
        for sender in senders.iter_mut().filter_map(Option::take) {
            let _ = sender.send(Err(io_error(error.to_string()))).await;
        }
    }
    drop(senders);

    let mut results = Vec::new();
    for upload in uploads {
        let result = match upload.await {
            Ok(result) => result,
            Err(join) => Err(RegistryError::Cancelled(format!(
                "upload task ended: {join}"
            ))),
        };
        // The source's failure explains the upload's better than "body error".
        results.push(match (&outcome, result) {
            (Err(source_error), Err(_)) => Err(source_error.clone()),
            (_, result) => result,
        });
    }
    FanOut {
        source_bytes,
        results,
    }
}

/// Sends one chunk, in pieces, to every live sender, dropping those whose
/// upload ended.
async fn forward(
    senders: &mut [Option<mpsc::Sender<Result<Bytes, std::io::Error>>>],
    mut chunk: Bytes,
) {
    while !chunk.is_empty() {
        let piece = chunk.split_to(chunk.len().min(PIECE_BYTES));
        for slot in senders.iter_mut() {
            if let Some(sender) = slot
                && sender.send(Ok(piece.clone())).await.is_err()
            {
                // That target's upload failed; the others go on.
                *slot = None;
            }
        }
    }
}

/// Reads the blob, forwarding chunks; on success every sender is left open for
/// the caller to close (which completes the uploads). The last chunk is held
/// back until size and digest are verified, so a target never receives a
/// complete body for bytes that do not match.
async fn read_source(
    source: &RegistryClient,
    repository: &str,
    digest: &Digest,
    size: u64,
    senders: &mut [Option<mpsc::Sender<Result<Bytes, std::io::Error>>>],
) -> (u64, Result<(), RegistryError>) {
    let mut hasher = digest.hasher();
    let mut read = 0u64;
    let mut resumes = 0u32;
    let max_resumes = 5;
    let mut held: Option<Bytes> = None;
    'open: loop {
        let mut stream = match source.get_blob(repository, digest, hasher.bytes()).await {
            Ok(stream) => Box::pin(stream),
            Err(error) => return (read, Err(error)),
        };
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(error) if error.is_transient() && resumes < max_resumes => {
                    resumes += 1;
                    tracing::debug!(%digest, offset = hasher.bytes(), %error, "resuming blob read");
                    continue 'open;
                }
                Err(error) => return (read, Err(error)),
            };
            read += chunk.len() as u64;
            if hasher.bytes() + chunk.len() as u64 > size {
                return (
                    read,
                    Err(RegistryError::SizeMismatch {
                        at: format!("{}/{repository}", source.host()),
                        digest: digest.clone(),
                        declared: size,
                        actual: hasher.bytes() + chunk.len() as u64,
                    }),
                );
            }
            hasher.update(&chunk);
            if let Some(previous) = held.replace(chunk) {
                forward(senders, previous).await;
            }
        }
        break;
    }
    if hasher.bytes() != size {
        return (
            read,
            Err(RegistryError::SizeMismatch {
                at: format!("{}/{repository}", source.host()),
                digest: digest.clone(),
                declared: size,
                actual: hasher.bytes(),
            }),
        );
    }
    let actual = hasher.finish();
    if &actual != digest {
        return (
            read,
            Err(RegistryError::DigestMismatch {
                at: format!("{}/{repository}", source.host()),
                expected: digest.clone(),
                actual,
            }),
        );
    }
    if let Some(last) = held {
        forward(senders, last).await;
    }
    (read, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_go_out_in_bounded_pieces_to_every_live_target() {
        let (a, mut a_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (b, b_rx) = mpsc::channel(CHANNEL_CHUNKS);
        drop(b_rx); // that target's upload ended
        let mut senders = vec![Some(a), Some(b)];
        let chunk = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        forward(&mut senders, chunk.clone()).await;
        assert!(senders[1].is_none(), "the ended target is dropped");

        drop(senders);
        let mut pieces = Vec::new();
        while let Some(piece) = a_rx.recv().await {
            pieces.push(piece.unwrap());
        }
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().all(|p| p.len() <= PIECE_BYTES));
        assert_eq!(pieces.concat(), chunk.to_vec());
    }
}
