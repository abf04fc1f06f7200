//! Input rules for request bodies and query strings, kept free of I/O so they are unit-tested on the host.
//! Limits mirror the CHECK constraints in the migrations: the database is the last line of defence,
//! these give the client a readable answer first.

use serde::Deserialize;

use crate::error::{AppError, FieldErrors};

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2000;
pub const AUTHOR_MAX: usize = 100;
pub const BODY_MAX: usize = 5000;
pub const PER_PAGE_DEFAULT: u32 = 20;
pub const PER_PAGE_MAX: u32 = 100;

/// Body of `POST /api/v1/items`. Fields are optional here so a missing field is reported per field
/// (422 with `fields`) rather than as one opaque deserialisation error.
#[derive(Debug, Deserialize)]
pub struct NewItemRequest {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub name: String,
    pub description: String,
}

/// Body of `POST /api/v1/items/{id}/reviews`. `rating` is an i64 so that 0, 6 or -3 reach our range check and
/// get the field message, instead of failing deserialisation.
#[derive(Debug, Deserialize)]
pub struct NewReviewRequest {
    pub author: Option<String>,
    pub rating: Option<i64>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReview {
    pub author: String,
    pub rating: i16,
    pub body: String,
}

/// Text check shared by all fields. PostgreSQL `text` cannot store NUL, and other control characters in
/// names are never intended; newlines and tabs are allowed in long-form text.
fn check_text(
    fields: &mut FieldErrors,
    field: &'static str,
    value: Option<String>,
    required: bool,
    max: usize,
    multiline: bool,
) -> String {
    let Some(value) = value else {
        if required {
            fields.insert(field, "is required".to_owned());
        }
        return String::new();
    };
    let value = value.trim().to_owned();
    let chars = value.chars().count();
    if required && chars == 0 {
        fields.insert(field, "must not be empty".to_owned());
    } else if chars > max {
        fields.insert(field, format!("must be at most {max} characters"));
    } else if value
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t' || c == '\r')))
    {
        fields.insert(field, "must not contain control characters".to_owned());
    }
    value
}

impl NewItemRequest {
    pub fn validate(self) -> Result<NewItem, AppError> {
        let mut fields = FieldErrors::new();
        let name = check_text(&mut fields, "name", self.name, true, NAME_MAX, false);
        let description = check_text(
            &mut fields,
            "description",
            self.description,
            false,
            DESCRIPTION_MAX,
            true,
        );
        if fields.is_empty() {
            Ok(NewItem { name, description })
        } else {
            Err(AppError::Validation(fields))
        }
    }
}

impl NewReviewRequest {
    pub fn validate(self) -> Result<NewReview, AppError> {
        let mut fields = FieldErrors::new();
        let author = check_text(&mut fields, "author", self.author, true, AUTHOR_MAX, false);
        let body = check_text(&mut fields, "body", self.body, false, BODY_MAX, true);
        let rating = match self.rating {
            None => {
                fields.insert("rating", "is required".to_owned());
                0
            }
            Some(r @ 1..=5) => r as i16,
            Some(_) => {
                fields.insert("rating", "must be between 1 and 5".to_owned());
                0
            }
        };
        if fields.is_empty() {
            Ok(NewReview { author, rating, body })
        } else {
            Err(AppError::Validation(fields))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    Name,
    Rating,
    Reviews,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

impl SortField {
    pub fn as_str(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::Name => "name",
            SortField::Rating => "rating",
            SortField::Reviews => "reviews",
        }
    }
}

impl SortOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            SortOrder::Asc => "asc",
            SortOrder::Desc => "desc",
        }
    }
}

/// Raw query string: everything is a string so that bad values produce our message, not serde's.
#[derive(Debug, Default, Deserialize)]
pub struct RawListQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub sort: Option<String>,
    pub order: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn offset(self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.per_page)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemListQuery {
    pub page: Page,
    pub sort: SortField,
    pub order: SortOrder,
}

impl ItemListQuery {
    /// Stable key for the list cache: one entry per distinct query.
    pub fn cache_field(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.page.page,
            self.page.per_page,
            self.sort.as_str(),
            self.order.as_str()
        )
    }
}

fn parse_number(name: &str, raw: Option<&str>, default: u32, max: u32) -> Result<u32, AppError> {
    let Some(raw) = raw else { return Ok(default) };
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(AppError::BadRequest(format!(
            "{name} must be an integer between 1 and {max}, got {raw:?}"
        ))),
    }
}

impl RawListQuery {
    pub fn page(&self) -> Result<Page, AppError> {
        // The page cap keeps OFFSET (and thus query cost) bounded for anonymous clients.
        let page = parse_number("page", self.page.as_deref(), 1, 100_000)?;
        let per_page = parse_number("per_page", self.per_page.as_deref(), PER_PAGE_DEFAULT, PER_PAGE_MAX)?;
        Ok(Page { page, per_page })
    }

    pub fn item_query(&self) -> Result<ItemListQuery, AppError> {
        let page = self.page()?;
        let sort = match self.sort.as_deref() {
            None | Some("created_at") => SortField::CreatedAt,
            Some("name") => SortField::Name,
            Some("rating") => SortField::Rating,
            Some("reviews") => SortField::Reviews,
            Some(other) => {
                return Err(AppError::BadRequest(format!(
                    "sort must be one of created_at, name, rating, reviews; got {other:?}"
                )));
            }
        };
        let order = match self.order.as_deref() {
            // Newest first is what a list of things people review wants by default; names read best A-Z.
            None if sort == SortField::Name => SortOrder::Asc,
            None | Some("desc") => SortOrder::Desc,
            Some("asc") => SortOrder::Asc,
            Some(other) => {
                return Err(AppError::BadRequest(format!(
                    "order must be asc or desc; got {other:?}"
                )));
            }
        };
        Ok(ItemListQuery { page, sort, order })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn q(page: Option<&str>, per_page: Option<&str>, sort: Option<&str>, order: Option<&str>) -> RawListQuery {
        RawListQuery {
            page: page.map(Into::into),
            per_page: per_page.map(Into::into),
            sort: sort.map(Into::into),
            order: order.map(Into::into),
        }
    }

    fn fields_of(err: AppError) -> FieldErrors {
        match err {
            AppError::Validation(f) => f,
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn pagination_defaults() {
        let parsed = RawListQuery::default().item_query().unwrap();
        assert_eq!(parsed.page, Page { page: 1, per_page: 20 });
        assert_eq!((parsed.sort, parsed.order), (SortField::CreatedAt, SortOrder::Desc));
        assert_eq!(parsed.page.offset(), 0);
        let name = q(None, None, Some("name"), None).item_query().unwrap();
        assert_eq!(name.order, SortOrder::Asc);
    }

    #[test]
    fn pagination_offsets() {
        let page = q(Some("3"), Some("10"), None, None).page().unwrap();
        assert_eq!((page.limit(), page.offset()), (10, 20));
        let last = q(Some("100000"), Some("100"), None, None).page().unwrap();
        assert_eq!(last.offset(), 9_999_900);
    }

    #[test]
    fn bad_pagination_is_400() {
        for raw in [
            q(Some("0"), None, None, None),
            q(Some("-1"), None, None, None),
            q(Some("abc"), None, None, None),
            q(Some("100001"), None, None, None),
            q(None, Some("0"), None, None),
            q(None, Some("101"), None, None),
            q(None, None, Some("price"), None),
            q(None, None, None, Some("up")),
        ] {
            let err = raw.item_query().unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{raw:?}");
        }
    }

    #[test]
    fn item_validation() {
        let ok = NewItemRequest {
            name: Some("  Kettle ".into()),
            description: None,
        }
        .validate()
        .unwrap();
        assert_eq!(
            ok,
            NewItem {
                name: "Kettle".into(),
                description: String::new()
            }
        );

        let f = fields_of(
            NewItemRequest {
                name: None,
                description: None,
            }
            .validate()
            .unwrap_err(),
        );
        assert_eq!(f["name"], "is required");
        let f = fields_of(
            NewItemRequest {
                name: Some("   ".into()),
                description: None,
            }
            .validate()
            .unwrap_err(),
        );
        assert_eq!(f["name"], "must not be empty");
        let long = "x".repeat(NAME_MAX + 1);
        let f = fields_of(
            NewItemRequest {
                name: Some(long),
                description: Some("a\0b".into()),
            }
            .validate()
            .unwrap_err(),
        );
        assert_eq!(f["name"], "must be at most 200 characters");
        assert_eq!(f["description"], "must not contain control characters");
        // Multi-byte characters count as one: limits are in characters, like char_length() in the schema.
        assert!(
            NewItemRequest {
                name: Some("é".repeat(NAME_MAX)),
                description: None
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn review_validation() {
        let ok = NewReviewRequest {
            author: Some("ann".into()),
            rating: Some(5),
            body: Some("line\nline".into()),
        };
        assert_eq!(ok.validate().unwrap().rating, 5);
        for bad in [0, 6, -1, i64::MAX] {
            let r = NewReviewRequest {
                author: Some("ann".into()),
                rating: Some(bad),
                body: None,
            };
            assert_eq!(
                fields_of(r.validate().unwrap_err())["rating"],
                "must be between 1 and 5"
            );
        }
        let f = fields_of(
            NewReviewRequest {
                author: None,
                rating: None,
                body: None,
            }
            .validate()
            .unwrap_err(),
        );
        assert_eq!(f.keys().copied().collect::<Vec<_>>(), ["author", "rating"]);
    }
}
