"""marshmallow request and response schemas, one module per resource. They import nothing of ours."""
