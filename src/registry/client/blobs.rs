//! Blob operations: HEAD, streamed GET (resumable with Range), mounts, and
//! uploads — one streamed PUT, or PATCH parts accepting 201 or 202 as ECR answers.

use super::{Answered, Progress, RegistryClient};
use crate::registry::auth::Scope;
use crate::registry::digest::Digest;
use crate::registry::error::RegistryError;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::{StatusCode, header};

/// Result of asking a registry to mount a blob from another repository.
#[derive(Debug)]
pub enum Mount {
    Mounted,
    /// The registry refused and opened an upload session instead (202).
    Refused(UploadSession),
}

/// An open upload session (the Location of `POST /blobs/uploads/`).
#[derive(Debug)]
pub struct UploadSession {
    pub(super) url: reqwest::Url,
    pub(super) repository: String,
}

impl RegistryClient {
    /// HEAD a blob; its size when it exists.
    pub async fn blob_size(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let response = self
            .send("HEAD blob", &Scope::pull(repository), || {
                self.inner.http.head(&url)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            // The header, not `content_length()`: a HEAD answer has no body,
            // so reqwest's body-based length is always 0.
            status if status.is_success() => Ok(Some(
                response
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            status => Err(self.status_error("HEAD blob", status, &[])),
        }
    }

    /// GET a blob from `offset` on; the response streams its body.
    pub async fn get_blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, RegistryError>> + use<>, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/{digest}"));
        let response = self
            .send("GET blob", &Scope::pull(repository), || {
                let request = self.inner.http.get(&url);
                if offset > 0 {
                    request.header(header::RANGE, format!("bytes={offset}-"))
                } else {
                    request
                }
            })
            .await?;
        let status = response.status();
        let resumed = offset == 0 || status == StatusCode::PARTIAL_CONTENT;
        if !status.is_success() || !resumed {
            let body = self
                .read_limited("GET blob", response, 64 << 10)
                .await
                .unwrap_or_default();
            return Err(if status.is_success() {
                RegistryError::Status {
                    operation: "GET blob (resume)",
                    host: self.inner.host.clone(),
                    status: status.as_u16(),
                    detail: Some("the registry ignored the Range request".into()),
                }
            } else {
                self.status_error("GET blob", status, &body)
            });
        }
        Ok(self.body_stream("GET blob", response))
    }

    fn upload_url(
        &self,
        operation: &'static str,
        response: &Answered,
    ) -> Result<reqwest::Url, RegistryError> {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::MissingLocation {
                operation,
                host: self.inner.host.clone(),
            })?;
        self.on_this_registry(operation, location)
    }

    /// `location` (absolute or relative) resolved against the registry, refused
    /// when it leads to another scheme, host or port.
    pub(super) fn on_this_registry(
        &self,
        operation: &'static str,
        location: &str,
    ) -> Result<reqwest::Url, RegistryError> {
        let base = &self.inner.base_url;
        let url = base
            .join(location)
            .map_err(|_| RegistryError::MissingLocation {
                operation,
                host: self.inner.host.clone(),
            })?;
        let same_origin = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        if !same_origin {
            return Err(RegistryError::ForeignLocation {
                operation,
                host: self.inner.host.clone(),
                location_host: url.host_str().unwrap_or_default().to_string(),
            });
        }
        Ok(url)
    }

    /// Opens an upload session.
    pub async fn start_upload(&self, repository: &str) -> Result<UploadSession, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let response = self
            .send("POST upload", &Scope::push(repository), || {
                self.inner.http.post(&url)
            })
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            let status = response.status();
            let body = self
                .read_limited("POST upload", response, 64 << 10)
                .await
                .unwrap_or_default();
            return Err(self.status_error("POST upload", status, &body));
        }
        Ok(UploadSession {
            url: self.upload_url("POST upload", &response)?,
            repository: repository.to_string(),
        })
    }

    /// Asks the registry to mount `digest` from `from` (same registry) into `repository`.
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, RegistryError> {
        let url = self.url(&format!("/v2/{repository}/blobs/uploads/"));
        let scope = Scope::push(repository).and_pull(from);
        let response = self
            .send("POST mount", &scope, || {
                self.inner
                    .http
                    .post(&url)
                    .query(&[("mount", digest.to_string().as_str()), ("from", from)])
            })
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Refused(UploadSession {
                url: self.upload_url("POST mount", &response)?,
                repository: repository.to_string(),
            })),
            status => {
                let body = self
                    .read_limited("POST mount", response, 64 << 10)
                    .await
                    .unwrap_or_default();
                Err(self.status_error("POST mount", status, &body))
            }
        }
    }

    /// Streams a whole blob into an upload session with one `PUT ?digest=`.
    /// `body` must yield exactly `size` bytes; an error item aborts the request,
    /// so nothing is committed.
    pub async fn upload_monolithic<S>(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        body: S,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        let mut url = session.url;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let progress = Progress::new();
        let touched = progress.clone();
        let body = body.inspect(move |chunk| {
            touched.touch(chunk.as_ref().map_or(0, Bytes::len));
        });
        let request = self
            .inner
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        let scope = Scope::push(&session.repository);
        let failure = match self
            .send_once("PUT blob", &scope, request, Some(&progress))
            .await
        {
            Ok(response) if response.status() == StatusCode::CREATED => return Ok(()),
            Ok(response) => {
                let status = response.status();
                let body = self
                    .read_limited("PUT blob", response, 64 << 10)
                    .await
                    .unwrap_or_default();
                self.status_error("PUT blob", status, &body)
            }
            Err(error) => error,
        };
        if progress.bytes() < size {
            // Not all of the blob left: the registry cannot have it.
            return Err(failure);
        }
        self.closing_failed(&session.repository, digest, size, failure)
            .await
    }

    /// After a closing `PUT` failed or lost its answer: the registry may have
    /// committed the blob anyway, so ask (HEAD) before reporting anything. A
    /// session that is gone (404) without the blob is [`RegistryError::UploadSessionLost`].
    async fn closing_failed(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        failure: RegistryError,
    ) -> Result<(), RegistryError> {
        if let Ok(Some(found)) = self.blob_size(repository, digest).await
            && (found == size || found == 0)
        {
            tracing::debug!(host = %self.inner.host, %digest, %failure, "the closing PUT failed but the blob is there");
            return Ok(());
        }
        if failure.is_not_found() {
            return Err(RegistryError::UploadSessionLost {
                at: format!("{}/{repository}", self.inner.host),
                digest: digest.clone(),
            });
        }
        Err(failure)
    }

    /// Streams a blob as `PATCH` parts of `part_size` bytes (the last may be
    /// smaller), accepting 201 or 202 for each part as ECR does, then closes the
    /// session with `PUT ?digest=`.
    pub async fn upload_chunked(
        &self,
        session: UploadSession,
        digest: &Digest,
        size: u64,
        part_size: u64,
        mut body: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static,
    ) -> Result<(), RegistryError> {
        let scope = Scope::push(&session.repository);
        let mut url = session.url;
        let mut offset = 0u64;
        let mut leftover: Option<Bytes> = None;
        while offset < size {
            let length = part_size.min(size - offset);
            let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            let progress = Progress::new();
            let touched = progress.clone();
            let part = receiver_stream(receiver).inspect(move |chunk| {
                touched.touch(chunk.as_ref().map_or(0, Bytes::len));
            });
            let request = self
                .inner
                .http
                .patch(url.clone())
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_LENGTH, length)
                .header(
                    header::CONTENT_RANGE,
                    format!("{}-{}", offset, offset + length - 1),
                )
                .body(reqwest::Body::wrap_stream(part));
            let feed = async {
                let mut remaining = length;
                while remaining > 0 {
                    let mut chunk = match leftover.take() {
                        Some(chunk) => chunk,
                        None => match body.next().await {
                            Some(Ok(chunk)) => chunk,
                            Some(Err(error)) => {
                                let _ = sender.send(Err(error)).await;
                                return false;
                            }
                            None => {
                                let _ = sender
                                    .send(Err(std::io::Error::new(
                                        std::io::ErrorKind::UnexpectedEof,
                                        "source ended early",
                                    )))
                                    .await;
                                return false;
                            }
                        },
                    };
                    if chunk.len() as u64 > remaining {
                        leftover = Some(chunk.split_off(remaining as usize));
                    }
                    remaining -= chunk.len() as u64;
                    if sender.send(Ok(chunk)).await.is_err() {
                        return false;
                    }
                }
                drop(sender);
                true
            };
            let (response, fed) = tokio::join!(
                self.send_once("PATCH blob", &scope, request, Some(&progress)),
                feed
            );
            let response = response?;
            let status = response.status();
            if !(status == StatusCode::ACCEPTED || status == StatusCode::CREATED) || !fed {
                let body = self
                    .read_limited("PATCH blob", response, 64 << 10)
                    .await
                    .unwrap_or_default();
                return Err(self.status_error("PATCH blob", status, &body));
            }
            url = self.upload_url("PATCH blob", &response)?;
            offset += length;
        }
        // Whatever the source still sends past the declared size is a mismatch.
        if leftover.is_some_and(|b| !b.is_empty()) {
            return Err(RegistryError::Cancelled(
                "source sent more bytes than declared".into(),
            ));
        }
        match body.next().await {
            None => {}
            Some(Ok(extra)) if extra.is_empty() => {}
            Some(Ok(_)) => {
                return Err(RegistryError::Cancelled(
                    "source sent more bytes than declared".into(),
                ));
            }
            Some(Err(error)) => return Err(RegistryError::Cancelled(error.to_string())),
        }
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        // The closing PUT is retried like any request, but a failed attempt
        // may have been committed: each failure first asks whether the blob
        // is there.
        let policy = &self.inner.settings.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .inner
                .http
                .put(url.clone())
                .header(header::CONTENT_LENGTH, 0);
            let failure = match self.send_once("PUT blob", &scope, request, None).await {
                Ok(response) if response.status() == StatusCode::CREATED => return Ok(()),
                Ok(response) => {
                    let status = response.status();
                    let body = self
                        .read_limited("PUT blob", response, 64 << 10)
                        .await
                        .unwrap_or_default();
                    self.status_error("PUT blob", status, &body)
                }
                Err(error) => error,
            };
            let refused_once =
                attempt == 1 && matches!(failure, RegistryError::Status { status: 401, .. });
            let again = (failure.is_transient() || refused_once) && policy.allows_another(attempt);
            match self
                .closing_failed(&session.repository, digest, size, failure)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error)
                    if again && !matches!(error, RegistryError::UploadSessionLost { .. }) =>
                {
                    tracing::debug!(host = %self.inner.host, %digest, attempt, %error, "closing the upload again");
                    tokio::time::sleep(policy.delay(attempt, None, fastrand::f64())).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// A stream over an mpsc receiver.
pub(crate) fn receiver_stream<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + Sync + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
