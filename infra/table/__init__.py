"""The single DynamoDB table: one store per aggregate (the item <-> record mapping next to
that aggregate's writes), composed by `repository.Repository`, which also holds the
transactions that span aggregates. `schema` is the table's shape and keys, `dynamo` the
client wrapper, `attributes` the generic attribute codec, `expression` the one builder of
update and condition expressions."""
