-- Searching SCIM resources in SQL (issue 24): /Users and /Groups searches filter, sort and
-- page in PostgreSQL instead of reading every resource of the type into Python.
--
-- folded holds what filters and sorts compare, as adapters/scim_folding.py computes it when
-- a resource is written: the values in the form the comparison key of the policy gives
-- (userName folded to lower case, ...), under "v" by attribute URN; the attributes present,
-- under "p"; the sort values of multi-valued attributes, under "s". It is NULL for the
-- resources written before this migration (the first searches of their type fold them) and
-- for those holding a value SQL cannot compare as Python does; while a resource type has
-- one, its searches run in Python.
ALTER TABLE scim_resources ADD COLUMN folded jsonb;

-- Paging in the default order (created, id), and the count of a resource type.
CREATE INDEX scim_resources_order ON scim_resources (resource_type, created, id);

-- Whether a resource type has resources without a folded form.
CREATE INDEX scim_resources_unfolded ON scim_resources (resource_type) WHERE folded IS NULL;

-- eq, sw (as a range of code points), gt/ge/lt/le and sortBy on the attributes SCIM clients
-- filter and sort on. COLLATE "C" is the code point order Python compares strings by; (created,
-- id) breaks the ties of a sortBy, so an ascending sort reads the index in order.
CREATE INDEX scim_resources_user_name ON scim_resources (resource_type,
    (folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:User:userName') COLLATE "C", created, id);
CREATE INDEX scim_resources_user_display_name ON scim_resources (resource_type,
    (folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:User:displayName') COLLATE "C", created, id);
CREATE INDEX scim_resources_user_external_id ON scim_resources (resource_type,
    (folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:User:externalId') COLLATE "C", created, id);
CREATE INDEX scim_resources_user_family_name ON scim_resources (resource_type,
    (folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:User:name.familyName') COLLATE "C", created, id);
CREATE INDEX scim_resources_group_display_name ON scim_resources (resource_type,
    (folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:Group:displayName') COLLATE "C", created, id);
CREATE INDEX scim_resources_group_external_id ON scim_resources (resource_type,
    (folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:Group:externalId') COLLATE "C", created, id);

-- co (and ew) on userName and displayName: a trigram index, where the server has pg_trgm (the
-- embedded PostgreSQL does). Without it, or where the extension lives in a schema this one
-- cannot see, these filters scan the resource type: slower, as exact.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE INDEX scim_resources_user_name_trigrams ON scim_resources USING gin
            ((folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:User:userName') gin_trgm_ops);
        CREATE INDEX scim_resources_display_name_trigrams ON scim_resources USING gin
            ((folded->'v'->>'urn:ietf:params:scim:schemas:core:2.0:User:displayName') gin_trgm_ops);
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'no trigram indexes for SCIM searches: %', SQLERRM;
END
$$;
