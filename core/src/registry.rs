//! Registries of connectors, streams, transforms and sinks, filled at link time with
//! `inventory` and built once into name-indexed maps.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::config::{PipelineConfig, Settings};
use crate::descriptor::StreamDescriptor;
use crate::error::{ConfigError, SinkError};
use crate::sink::{Access, Sink};
use crate::source::Source;
use crate::transform::Transform;

/// Builds a configured source from `[source]` settings.
pub type BuildSource = fn(&Settings, &PipelineConfig) -> Result<Arc<dyn Source>, ConfigError>;

/// Opens a sink from `[sink]` settings.
pub type OpenSink = fn(&Settings, &PipelineConfig, Access) -> Result<Box<dyn Sink>, SinkError>;

/// A connector, registered with `inventory::submit!`.
pub struct ConnectorDescriptor {
    /// Name used in `[source] connector = "..."`.
    pub name: &'static str,
    /// One line for `ferry connectors`.
    pub description: &'static str,
    /// Builds a configured source from the `[source]` settings.
    pub build: BuildSource,
    /// The pipeline `ferry sync NAME` uses when NAME is this connector, not a file.
    pub default_pipeline: Option<&'static str>,
}
inventory::collect!(ConnectorDescriptor);

/// A sink, registered with `inventory::submit!`.
pub struct SinkDescriptor {
    /// Name used in `[sink] type = "..."`.
    pub name: &'static str,
    /// One line for `ferry connectors`.
    pub description: &'static str,
    /// Opens the sink from the `[sink]` settings. May block briefly (opening a file).
    pub open: OpenSink,
}
inventory::collect!(SinkDescriptor);

/// A transform, registered with `inventory::submit!`.
pub struct TransformDescriptor {
    /// Name used in `[[transforms]] type = "..."`.
    pub name: &'static str,
    /// One line for `ferry connectors`.
    pub description: &'static str,
    /// Builds the transform from its settings (without `type` and `streams`).
    pub build: fn(&Settings) -> Result<Box<dyn Transform>, ConfigError>,
}
inventory::collect!(TransformDescriptor);

/// Everything registered, indexed by name.
pub struct Registry {
    /// Connectors by name.
    pub connectors: BTreeMap<&'static str, &'static ConnectorDescriptor>,
    /// Streams by connector, in declaration order.
    pub streams: BTreeMap<&'static str, Vec<&'static StreamDescriptor>>,
    /// Transforms by name.
    pub transforms: BTreeMap<&'static str, &'static TransformDescriptor>,
    /// Sinks by name.
    pub sinks: BTreeMap<&'static str, &'static SinkDescriptor>,
}

static REGISTRY: OnceLock<Result<Registry, String>> = OnceLock::new();

fn insert_unique<T>(
    map: &mut BTreeMap<&'static str, &'static T>,
    kind: &str,
    name: &'static str,
    item: &'static T,
) -> Result<(), String> {
    if map.insert(name, item).is_some() {
        return Err(format!("two {kind}s are registered under the name `{name}`"));
    }
    Ok(())
}

impl Registry {
    /// The registry, built on first use. Fails if two entries share a name or a
    /// descriptor is incoherent (a programming error in a connector crate).
    pub fn global() -> Result<&'static Registry, ConfigError> {
        REGISTRY.get_or_init(Self::build).as_ref().map_err(|e| ConfigError::Other(format!("invalid registry: {e}")))
    }

    fn build() -> Result<Registry, String> {
        let mut connectors = BTreeMap::new();
        for c in inventory::iter::<ConnectorDescriptor> {
            insert_unique(&mut connectors, "connector", c.name, c)?;
        }
        let mut transforms = BTreeMap::new();
        for t in inventory::iter::<TransformDescriptor> {
            insert_unique(&mut transforms, "transform", t.name, t)?;
        }
        let mut sinks = BTreeMap::new();
        for s in inventory::iter::<SinkDescriptor> {
            insert_unique(&mut sinks, "sink", s.name, s)?;
        }
        let mut streams: BTreeMap<&'static str, Vec<&'static StreamDescriptor>> = BTreeMap::new();
        let mut tables: BTreeMap<&'static str, &'static str> = BTreeMap::new();
        for s in inventory::iter::<StreamDescriptor> {
            s.validate().map_err(|e| format!("stream `{}.{}`: {e}", s.connector, s.name))?;
            if !connectors.contains_key(s.connector) {
                return Err(format!("stream `{}` names unknown connector `{}`", s.name, s.connector));
            }
            let list = streams.entry(s.connector).or_default();
            if list.iter().any(|x| x.name == s.name) {
                return Err(format!("connector `{}` registers stream `{}` twice", s.connector, s.name));
            }
            if let Some(other) = tables.insert(s.table, s.connector) {
                return Err(format!("table `{}` is claimed by `{other}` and `{}`", s.table, s.connector));
            }
            list.push(s);
        }
        // inventory yields in an unspecified order; keep each connector's streams sorted
        // by name so listings are stable.
        for list in streams.values_mut() {
            list.sort_by_key(|s| s.name);
        }
        Ok(Registry { connectors, streams, transforms, sinks })
    }

    /// A connector by name.
    pub fn connector(&self, name: &str) -> Result<&'static ConnectorDescriptor, ConfigError> {
        self.connectors.get(name).copied().ok_or_else(|| unknown("connector", name, self.connectors.keys()))
    }

    /// A sink by name.
    pub fn sink(&self, name: &str) -> Result<&'static SinkDescriptor, ConfigError> {
        self.sinks.get(name).copied().ok_or_else(|| unknown("sink", name, self.sinks.keys()))
    }

    /// A transform by name.
    pub fn transform(&self, name: &str) -> Result<&'static TransformDescriptor, ConfigError> {
        self.transforms.get(name).copied().ok_or_else(|| unknown("transform", name, self.transforms.keys()))
    }

    /// The streams of a connector.
    pub fn streams_of(&self, connector: &str) -> &[&'static StreamDescriptor] {
        self.streams.get(connector).map(Vec::as_slice).unwrap_or(&[])
    }

    /// One stream of a connector.
    pub fn stream(&self, connector: &str, name: &str) -> Result<&'static StreamDescriptor, ConfigError> {
        let list = self.streams_of(connector);
        list.iter()
            .copied()
            .find(|s| s.name == name)
            .ok_or_else(|| unknown("stream", name, list.iter().map(|s| &s.name)))
    }
}

fn unknown<'a>(kind: &'static str, name: &str, names: impl Iterator<Item = &'a &'static str>) -> ConfigError {
    let available: Vec<&str> = names.copied().collect();
    ConfigError::Unknown { kind, name: name.to_owned(), available: available.join(", ") }
}
