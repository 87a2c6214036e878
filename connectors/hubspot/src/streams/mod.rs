//! The four streams: contacts, companies and deals share `objects.rs`; owners is a list.

pub mod objects;
pub mod owners;

use ferry_core::descriptor::{Column, Partitioning, SqlType, StreamDescriptor, SyncMode, TimeFlagSupport};

/// The connector's streams by name, so that choosing a stream's reader is an exhaustive
/// match: a stream registered without a reader fails the test below instead of being read
/// as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Contacts,
    Companies,
    Deals,
    Owners,
}

impl Stream {
    pub const ALL: [Stream; 4] = [Stream::Contacts, Stream::Companies, Stream::Deals, Stream::Owners];

    /// The registered stream name.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Contacts => "contacts",
            Stream::Companies => "companies",
            Stream::Deals => "deals",
            Stream::Owners => "owners",
        }
    }

    pub fn of(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }
}

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "hubspot",
        name: "contacts",
        table: "hubspot_contacts",
        primary_key: &["id"],
        columns: &[
            Column::key("id", SqlType::Text, "id"),
            Column::new("email", SqlType::Text, "properties.email"),
            Column::new("firstname", SqlType::Text, "properties.firstname"),
            Column::new("lastname", SqlType::Text, "properties.lastname"),
            Column::new("hs_created_at", SqlType::Timestamp, "createdAt"),
            Column::new("hs_updated_at", SqlType::Timestamp, "updatedAt"),
            Column::new("archived", SqlType::Boolean, "archived"),
            Column::new("archived_at", SqlType::Timestamp, "archivedAt"),
        ],
        mode: SyncMode::Incremental { cursor_field: "lastmodifieddate" },
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::ALL,
        description: "search on lastmodifieddate; --all lists; archived ones marked",
        legacy_key: &[],
    }
}

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "hubspot",
        name: "companies",
        table: "hubspot_companies",
        primary_key: &["id"],
        columns: &[
            Column::key("id", SqlType::Text, "id"),
            Column::new("name", SqlType::Text, "properties.name"),
            Column::new("domain", SqlType::Text, "properties.domain"),
            Column::new("hs_created_at", SqlType::Timestamp, "createdAt"),
            Column::new("hs_updated_at", SqlType::Timestamp, "updatedAt"),
            Column::new("archived", SqlType::Boolean, "archived"),
            Column::new("archived_at", SqlType::Timestamp, "archivedAt"),
        ],
        mode: SyncMode::Incremental { cursor_field: "hs_lastmodifieddate" },
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::ALL,
        description: "search on hs_lastmodifieddate; --all lists; archived ones marked",
        legacy_key: &[],
    }
}

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "hubspot",
        name: "deals",
        table: "hubspot_deals",
        primary_key: &["id"],
        columns: &[
            Column::key("id", SqlType::Text, "id"),
            Column::new("dealname", SqlType::Text, "properties.dealname"),
            Column::new("amount", SqlType::Real, "properties.amount"),
            Column::new("dealstage", SqlType::Text, "properties.dealstage"),
            Column::new("hs_created_at", SqlType::Timestamp, "createdAt"),
            Column::new("hs_updated_at", SqlType::Timestamp, "updatedAt"),
            Column::new("archived", SqlType::Boolean, "archived"),
            Column::new("archived_at", SqlType::Timestamp, "archivedAt"),
        ],
        mode: SyncMode::Incremental { cursor_field: "hs_lastmodifieddate" },
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::ALL,
        description: "search on hs_lastmodifieddate; --all lists; archived ones marked",
        legacy_key: &[],
    }
}

ferry_core::inventory::submit! {
    StreamDescriptor {
        connector: "hubspot",
        name: "owners",
        table: "hubspot_owners",
        primary_key: &["id"],
        columns: &[
            Column::key("id", SqlType::Text, "id"),
            Column::new("email", SqlType::Text, "email"),
            Column::new("firstname", SqlType::Text, "firstName"),
            Column::new("lastname", SqlType::Text, "lastName"),
            Column::new("hs_updated_at", SqlType::Timestamp, "updatedAt"),
            Column::new("archived", SqlType::Boolean, "archived"),
        ],
        mode: SyncMode::FullRefresh,
        partitioning: Partitioning::None,
        default_lookback_days: 0,
        time_flags: TimeFlagSupport::NONE,
        description: "owners (users who own records); full refresh",
        legacy_key: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::Stream;

    /// Every registered stream has a reader, and every reader a registered stream.
    #[test]
    fn every_registered_stream_has_a_reader() {
        let registry = ferry_core::registry::Registry::global().unwrap();
        let mut registered: Vec<&str> = registry.streams_of("hubspot").iter().map(|d| d.name).collect();
        let mut readers: Vec<&str> = Stream::ALL.iter().map(|s| s.name()).collect();
        registered.sort_unstable();
        readers.sort_unstable();
        assert_eq!(registered, readers);
    }
}
