//! What a new password must be beyond its length (which [`Password::new`] enforces):
//! hard to guess by zxcvbn's estimate, unlike the account's own email and name, and,
//! when the policy asks, absent from breach corpora.
//!
//! Only new passwords go through here; sign-in never does, so tightening the policy
//! does not lock anyone out.

use crate::error::ServiceError;
use crate::input::{DisplayName, Email, MIN_PASSWORD_CHARS, Password};
use std::fmt;
use unicode_normalization::UnicodeNormalization;

mod breached;
#[cfg(feature = "breached-password-api")]
pub use breached::PwnedPasswordsRange;
pub use breached::{
    BreachCheckError, BreachedPasswords, LocalBreachedList, count_in_range_response,
    password_sha1_hex,
};

/// zxcvbn's scale: 0 (guessable in under 10^3 tries) to 4 (over 10^10).
pub const MAX_STRENGTH_SCORE: u8 = 4;

/// Email local parts and display names shorter than this are not searched for in
/// the password: "al" would refuse every password containing those two letters.
const MIN_SIMILAR_CHARS: usize = 3;

/// zxcvbn's matching is superlinear in length (optimised, about 20 ms at 64 characters
/// but 400 ms at 100), and registration is open to anyone, so only a prefix is scored.
/// A prefix that scores well enough vouches for the whole password; one that does not
/// is a weak run of 64 characters, which refusing costs a user little.
const MAX_SCORED_CHARS: usize = 64;

/// Rules for new passwords. The minimum length is not here: [`Password::new`]
/// enforces it ([`PasswordPolicy::min_chars`] reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Lowest zxcvbn score accepted, 0 to 4; 0 turns the strength check off and
    /// anything above 4 counts as 4.
    pub min_score: u8,
    /// Refuse passwords a [`BreachedPasswords`] source knows. Off by default: the
    /// useful sources are a large local list or a third-party API.
    pub check_breached: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_score: 3,
            check_breached: false,
        }
    }
}

impl PasswordPolicy {
    /// The minimum length in characters, as [`Password::new`] enforces it.
    pub const fn min_chars(&self) -> usize {
        MIN_PASSWORD_CHARS
    }

    fn required_score(&self) -> u8 {
        self.min_score.min(MAX_STRENGTH_SCORE)
    }
}

/// Why a new password was refused, worded for the person choosing it. Never holds
/// the password or anything derived from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeakPasswordReason {
    /// zxcvbn scored it below the policy's minimum; `warning` and `suggestions` are
    /// its feedback (English).
    TooGuessable {
        score: u8,
        required: u8,
        warning: Option<String>,
        suggestions: Vec<String>,
    },
    /// It contains the email address or the part before the `@`.
    SimilarToEmail,
    /// It contains the display name.
    SimilarToName,
    /// It appears in a corpus of passwords leaked in data breaches.
    Breached,
}

impl fmt::Display for WeakPasswordReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooGuessable {
                score,
                required,
                warning,
                suggestions,
            } => {
                write!(
                    f,
                    "the password is too easy to guess (score {score} of {MAX_STRENGTH_SCORE}; \
                     needs {required})"
                )?;
                let advice: Vec<&str> = warning
                    .iter()
                    .chain(suggestions)
                    .map(String::as_str)
                    .collect();
                if !advice.is_empty() {
                    write!(f, ": {}", advice.join(" "))?;
                }
                Ok(())
            }
            Self::SimilarToEmail => {
                f.write_str("the password must not contain your email address or its name part")
            }
            Self::SimilarToName => f.write_str("the password must not contain your name"),
            Self::Breached => f.write_str(
                "the password appears in a list of passwords leaked in data breaches, \
                 so attackers try it early; choose another",
            ),
        }
    }
}

/// Checks a new password against `policy`, in this order: similarity to `email` and
/// `display_name`, zxcvbn strength (with both as context, so a password built from
/// them scores lower), then, if `policy.check_breached`, the `breached` source.
///
/// A breached-password source that fails, or is missing while the policy asks for
/// one, is logged and skipped rather than refusing the password: an outage of a
/// third-party API should not stop sign-ups, and the strength check has passed.
///
/// # Errors
/// `WeakPassword` with the first reason that applies.
pub async fn check_new_password(
    policy: &PasswordPolicy,
    breached: Option<&dyn BreachedPasswords>,
    password: &Password,
    email: &Email,
    display_name: Option<&DisplayName>,
) -> Result<(), ServiceError> {
    let refuse = |reason| Err(ServiceError::WeakPassword { reason });
    if let Some(reason) = similarity(password, email, display_name) {
        return refuse(reason);
    }
    if let Some(reason) = strength(policy, password, email, display_name).await? {
        return refuse(reason);
    }
    if policy.check_breached {
        match breached {
            Some(source) => match source.is_breached(password).await {
                Ok(true) => return refuse(WeakPasswordReason::Breached),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "breached-password check skipped"),
            },
            None => tracing::warn!(
                "password policy asks for a breached-password check but no source was given"
            ),
        }
    }
    Ok(())
}

/// Lowercased and NFKC-normalised, as [`Email`] is, so "ALICE" and full-width
/// letters do not slip past the comparison.
fn comparable(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

fn local_part(email: &Email) -> &str {
    email
        .as_str()
        .rsplit_once('@')
        .map_or(email.as_str(), |(local, _)| local)
}

fn similarity(
    password: &Password,
    email: &Email,
    display_name: Option<&DisplayName>,
) -> Option<WeakPasswordReason> {
    let password = comparable(password.expose());
    let local = local_part(email);
    if password.contains(email.as_str())
        || (local.chars().count() >= MIN_SIMILAR_CHARS && password.contains(local))
    {
        return Some(WeakPasswordReason::SimilarToEmail);
    }
    if let Some(name) = display_name {
        // Spacing is ignored on both sides: "Alice Anderson" is in "aliceanderson1".
        let name = without_whitespace(&comparable(name.as_str()));
        if name.chars().count() >= MIN_SIMILAR_CHARS
            && without_whitespace(&password).contains(&name)
        {
            return Some(WeakPasswordReason::SimilarToName);
        }
    }
    None
}

/// The words zxcvbn treats as known to an attacker: the email, its local part, the
/// display name, and their pieces ("alice.anderson" gives "alice" and "anderson").
fn user_inputs(email: &Email, display_name: Option<&DisplayName>) -> Vec<String> {
    let mut inputs = vec![email.as_str().to_owned()];
    let mut add_with_pieces = |text: &str| {
        inputs.push(text.to_owned());
        inputs.extend(
            text.split(|c: char| !c.is_alphanumeric())
                .filter(|piece| piece.chars().count() >= MIN_SIMILAR_CHARS && *piece != text)
                .map(str::to_owned),
        );
    };
    add_with_pieces(local_part(email));
    if let Some(name) = display_name {
        add_with_pieces(&comparable(name.as_str()));
    }
    inputs.sort_unstable();
    inputs.dedup();
    inputs
}

/// Runs zxcvbn on the blocking pool: tens of milliseconds of CPU for a long password.
async fn strength(
    policy: &PasswordPolicy,
    password: &Password,
    email: &Email,
    display_name: Option<&DisplayName>,
) -> Result<Option<WeakPasswordReason>, ServiceError> {
    let required = policy.required_score();
    if required == 0 {
        return Ok(None);
    }
    let inputs = user_inputs(email, display_name);
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let scored: String = password.expose().chars().take(MAX_SCORED_CHARS).collect();
        estimate(&scored, &inputs, required)
    })
    .await
    .map_err(|_| ServiceError::Crypto("password strength estimation did not finish"))
}

fn estimate(password: &str, user_inputs: &[&str], required: u8) -> Option<WeakPasswordReason> {
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    let score = u8::from(entropy.score());
    if score >= required {
        return None;
    }
    let (warning, suggestions) = entropy
        .feedback()
        .map(|feedback| {
            (
                feedback.warning().map(|w| w.to_string()),
                feedback
                    .suggestions()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            )
        })
        .unwrap_or_default();
    Some(WeakPasswordReason::TooGuessable {
        score,
        required,
        warning,
        suggestions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::MAX_PASSWORD_CHARS;

    fn email() -> Email {
        Email::parse("Alice.Anderson@example.com").unwrap()
    }

    fn name() -> DisplayName {
        DisplayName::parse("Alice Anderson").unwrap()
    }

    async fn check(password: &str) -> Result<(), ServiceError> {
        check_with(&PasswordPolicy::default(), None, password).await
    }

    async fn check_with(
        policy: &PasswordPolicy,
        breached: Option<&dyn BreachedPasswords>,
        password: &str,
    ) -> Result<(), ServiceError> {
        let password = Password::new(password).unwrap();
        check_new_password(policy, breached, &password, &email(), Some(&name())).await
    }

    fn reason(result: Result<(), ServiceError>) -> WeakPasswordReason {
        match result {
            Err(ServiceError::WeakPassword { reason }) => reason,
            other => panic!("expected a weak-password refusal, got {other:?}"),
        }
    }

    const STRONG: &str = "velvet-Quarry-9-tundra-Obelisk";

    #[tokio::test]
    async fn common_passwords_are_refused_with_their_score() {
        for weak in [
            "password",
            "password1",
            "P@ssw0rd1",
            "correcthorse",
            "iloveyou2024",
            "Summer2024!",
            "qwertyuiop",
        ] {
            match reason(check(weak).await) {
                WeakPasswordReason::TooGuessable {
                    score, required, ..
                } => {
                    assert!(score < 3, "{weak} scored {score}");
                    assert_eq!(required, 3);
                }
                other => panic!("{weak}: expected TooGuessable, got {other:?}"),
            }
        }
        let WeakPasswordReason::TooGuessable { score, warning, .. } =
            reason(check("password").await)
        else {
            panic!("expected TooGuessable");
        };
        assert_eq!(score, 0);
        assert_eq!(
            warning.as_deref(),
            Some("This is a top-10 common password.")
        );
    }

    #[tokio::test]
    async fn a_stricter_policy_asks_for_more() {
        let strict = PasswordPolicy {
            min_score: 4,
            ..PasswordPolicy::default()
        };
        // Scores 3: enough by default, not under the strictest policy.
        let fair = "anderson.example";
        check(fair).await.unwrap();
        assert!(matches!(
            reason(check_with(&strict, None, fair).await),
            WeakPasswordReason::TooGuessable {
                score: 3,
                required: 4,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn the_email_local_part_inside_the_password_is_refused() {
        for similar in [
            "alice.anderson-2024!",
            "xX ALICE.ANDERSON Xx",
            "alice.anderson@example.com",
        ] {
            assert_eq!(
                reason(check(similar).await),
                WeakPasswordReason::SimilarToEmail,
                "{similar}"
            );
        }
    }

    #[tokio::test]
    async fn a_whole_short_email_is_refused_though_its_local_part_is_not_searched() {
        let email = Email::parse("al@example.com").unwrap();
        let policy = PasswordPolicy::default();
        let equal = Password::new("AL@example.com").unwrap();
        let result = check_new_password(&policy, None, &equal, &email, None).await;
        assert_eq!(reason(result), WeakPasswordReason::SimilarToEmail);
        let unrelated = Password::new(STRONG).unwrap();
        assert!(
            check_new_password(&policy, None, &unrelated, &email, None)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_display_name_inside_the_password_is_refused() {
        for similar in ["AliceAnderson#77", "my alice anderson pw"] {
            assert_eq!(
                reason(check(similar).await),
                WeakPasswordReason::SimilarToName,
                "{similar}"
            );
        }
    }

    #[tokio::test]
    async fn a_strong_passphrase_is_accepted() {
        check(STRONG).await.unwrap();
        check("t7#Vq!m2Lz9@pR4w").await.unwrap();
    }

    #[tokio::test]
    async fn the_users_own_words_lower_the_score() {
        // Neither the whole name nor the local part, so the similarity rule does not
        // apply: only zxcvbn's knowledge of the user's words can refuse it.
        let email = Email::parse("zorvath.quillby@example.com").unwrap();
        let name = DisplayName::parse("Zorvath Quillby").unwrap();
        let password = Password::new("quillbyzorvath").unwrap();
        let alone = u8::from(zxcvbn::zxcvbn(password.expose(), &[]).score());
        assert!(alone >= 3, "scores {alone} without context");
        let policy = PasswordPolicy::default();
        let result = check_new_password(&policy, None, &password, &email, Some(&name)).await;
        assert!(matches!(
            reason(result),
            WeakPasswordReason::TooGuessable { score, .. } if score < alone
        ));
    }

    #[tokio::test]
    async fn a_long_password_is_scored_quickly_by_its_prefix() {
        let long: String = (0..MAX_PASSWORD_CHARS as u32)
            .map(|i| char::from(b'!' + ((i * 37 + 11) % 90) as u8))
            .collect();
        let started = std::time::Instant::now();
        check(&long).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_zero_minimum_score_skips_the_strength_check() {
        let lax = PasswordPolicy {
            min_score: 0,
            ..PasswordPolicy::default()
        };
        check_with(&lax, None, "password").await.unwrap();
    }

    #[tokio::test]
    async fn the_local_breached_list_refuses_listed_and_accepts_unlisted_passwords() {
        let policy = PasswordPolicy {
            check_breached: true,
            ..PasswordPolicy::default()
        };
        let leaked = "Tr0ub4dor&3-leaked-2019";
        let list = LocalBreachedList::from_passwords([leaked, "another leaked one"]);
        assert_eq!(list.len(), 2);
        assert_eq!(
            reason(check_with(&policy, Some(&list), leaked).await),
            WeakPasswordReason::Breached
        );
        check_with(&policy, Some(&list), STRONG).await.unwrap();

        // The same list given as digests, in either case and with counts.
        let upper = password_sha1_hex(&Password::new(leaked).unwrap());
        let hashed =
            LocalBreachedList::from_sha1_hex([format!("{}:42", upper.to_lowercase())]).unwrap();
        assert_eq!(
            reason(check_with(&policy, Some(&hashed), leaked).await),
            WeakPasswordReason::Breached
        );

        // Listed, but the policy does not ask: accepted.
        check_with(&PasswordPolicy::default(), Some(&list), leaked)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn no_password_text_appears_in_the_error() {
        let weak_text = "qwertyuiop";
        let similar_text = "alice.anderson-2024!";
        let weak = check(weak_text).await.unwrap_err();
        let similar = check(similar_text).await.unwrap_err();
        let list = LocalBreachedList::from_passwords([STRONG]);
        let policy = PasswordPolicy {
            check_breached: true,
            ..PasswordPolicy::default()
        };
        let breached = check_with(&policy, Some(&list), STRONG).await.unwrap_err();
        for (err, text) in [
            (&weak, weak_text),
            (&similar, similar_text),
            (&breached, STRONG),
        ] {
            for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
                assert!(
                    !shown.to_lowercase().contains(&text.to_lowercase()),
                    "{shown}"
                );
            }
        }
        assert!(format!("{list:?}").ends_with("{ entries: 1 }"));
    }

    #[tokio::test]
    async fn the_reason_is_explained_to_the_user() {
        assert_eq!(
            check("password").await.unwrap_err().to_string(),
            "weak password: the password is too easy to guess (score 0 of 4; needs 3): \
             This is a top-10 common password. Add another word or two. \
             Uncommon words are better."
        );
        assert_eq!(
            WeakPasswordReason::SimilarToName.to_string(),
            "the password must not contain your name"
        );
    }
}
