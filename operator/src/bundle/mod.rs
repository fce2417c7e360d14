//! The Flux bundle: an OCI artifact in the Flux artifact format whose single layer holds
//! `flux/<version>/*.yaml`, `flux-images/<version>/<variant>.yaml` and optional `templates/`.
//! This module holds the pure parts: the layer's archive format, the layout and the choice of
//! version.

pub mod archive;
pub mod cache;
pub mod credentials;
pub mod embedded;
mod http;
pub mod layout;
mod oci;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod source;
pub mod version;

/// Media type of the artifact's config, as `flux push artifact` writes it.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.flux.config.v1+json";
/// Media type of the single content layer.
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.flux.content.v1.tar+gzip";
/// Manifest annotation listing the Flux versions a bundle carries (`v2.8.8,v2.9.4`), so a
/// listing of tags needs no layer download.
pub const FLUX_VERSIONS_ANNOTATION: &str = "io.fluxop.bundle.flux-versions";
