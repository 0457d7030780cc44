-- The SCIM resources (Users, Groups, ...) that clients such as Okta and Entra ID push to
-- /scim/v2, as adapters/scim_storage.py keeps them.
--
-- data holds the resource as SCIM JSON, without id and meta, which the other columns hold.
-- It never holds a password: password is writeOnly and Accord is not a credential store,
-- so the storage drops it before writing.
CREATE TABLE scim_resources (
    resource_type  text        NOT NULL,
    id             text        NOT NULL,
    data           jsonb       NOT NULL,
    version        bigint      NOT NULL CHECK (version > 0),
    created        timestamptz NOT NULL,
    last_modified  timestamptz NOT NULL,
    PRIMARY KEY (resource_type, id)
);

-- The values of the attributes whose uniqueness is server or global (userName), in the form
-- comparisons use (userName is case-insensitive, so it is folded). The URN of an attribute
-- names its schema, so two resources of any type clash when they hold the same value under
-- the same URN (RFC 7643 erratum 8279).
CREATE TABLE scim_unique_values (
    urn            text NOT NULL,
    value          text NOT NULL,
    resource_type  text NOT NULL,
    id             text NOT NULL,
    CONSTRAINT scim_unique_values_taken UNIQUE (urn, value),
    FOREIGN KEY (resource_type, id) REFERENCES scim_resources ON DELETE CASCADE
);
CREATE INDEX scim_unique_values_owner ON scim_unique_values (resource_type, id);

-- An equality index of a few single-valued string attributes (userName, externalId,
-- displayName), in the form comparisons use, so that a filter such as userName eq "x" is an
-- index lookup instead of a scan of the resource type.
CREATE TABLE scim_equality_values (
    resource_type  text NOT NULL,
    id             text NOT NULL,
    urn            text NOT NULL,
    value          text NOT NULL,
    PRIMARY KEY (resource_type, id, urn),
    FOREIGN KEY (resource_type, id) REFERENCES scim_resources ON DELETE CASCADE
);
CREATE INDEX scim_equality_values_lookup ON scim_equality_values (resource_type, urn, value);
