-- A user name belongs to one living identity, whatever its case (SCIM userName is
-- case-insensitive); a deleted identity releases it, so a rehire can have it again.
ALTER TABLE identities DROP CONSTRAINT identities_user_name_key;
CREATE UNIQUE INDEX identities_user_name_live ON identities (lower(user_name))
    WHERE status <> 'deleted';
