//! Chat templates, recognised from the GGUF's `tokenizer.chat_template`.
//!
//! We do not run Jinja; we recognise the common template families by their markers and format
//! the turns ourselves:
//! - ChatML (`<|im_start|>`; SmolLM2, Qwen): each turn is `<|im_start|>{role}\n{content}<|im_end|>\n`,
//!   closed by `<|im_start|>assistant\n`. When the template inserts a default system turn for
//!   conversations that have none (SmolLM2's "You are a helpful AI assistant named SmolLM, trained
//!   by Hugging Face"), that text is taken from the template and inserted the same way.
//! - Llama 3 (`<|start_header_id|>`), Zephyr/TinyLlama (`<|user|>`), Llama 2 (`[INST]`).
//! - Anything else: the prompt as it is.

/// A recognised template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// ChatML, with the template's default system message if it has one.
    ChatMl {
        /// Inserted when the conversation has no system turn.
        default_system: Option<String>,
    },
    /// Llama 3 header blocks.
    Llama3,
    /// Zephyr (`<|user|>` ... `</s>`).
    Zephyr,
    /// Llama 2 `[INST]` blocks.
    Llama2,
    /// No template: the prompt is used as it is.
    Raw,
}

impl ChatTemplate {
    /// Recognises the family of a Jinja template (`None`: no template in the file).
    pub fn detect(template: Option<&str>) -> Self {
        let Some(t) = template else {
            return ChatTemplate::Raw;
        };
        if t.contains("<|im_start|>") {
            ChatTemplate::ChatMl {
                default_system: default_chatml_system(t),
            }
        } else if t.contains("<|start_header_id|>") {
            ChatTemplate::Llama3
        } else if t.contains("<|user|>") {
            ChatTemplate::Zephyr
        } else if t.contains("[INST]") {
            ChatTemplate::Llama2
        } else {
            ChatTemplate::Raw
        }
    }

    /// The text of a one-turn conversation with `user`, ready for the assistant's reply.
    pub fn apply(&self, user: &str) -> String {
        self.apply_messages(&[ChatMessage::new("user", user)])
    }

    /// The text of a conversation, ready for the assistant's reply. Roles are used as given
    /// (`system`, `user`, `assistant`); ChatML's default system turn is inserted only when the
    /// first message is not a system message, as the templates do.
    pub fn apply_messages(&self, messages: &[ChatMessage]) -> String {
        let mut s = String::new();
        match self {
            ChatTemplate::ChatMl { default_system } => {
                if let Some(sys) = default_system
                    && messages.first().is_none_or(|m| m.role != "system")
                {
                    s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                }
                for m in messages {
                    s.push_str(&format!(
                        "<|im_start|>{}\n{}<|im_end|>\n",
                        m.role, m.content
                    ));
                }
                s.push_str("<|im_start|>assistant\n");
            }
            ChatTemplate::Llama3 => {
                for m in messages {
                    s.push_str(&format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role, m.content
                    ));
                }
                s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
            ChatTemplate::Zephyr => {
                for m in messages {
                    s.push_str(&format!("<|{}|>\n{}</s>\n", m.role, m.content));
                }
                s.push_str("<|assistant|>\n");
            }
            ChatTemplate::Llama2 => {
                // System text goes inside the first [INST] block, as Llama 2's template does.
                let mut system = String::new();
                for m in messages {
                    match m.role.as_str() {
                        "system" => system = format!("<<SYS>>\n{}\n<</SYS>>\n\n", m.content),
                        "assistant" => s.push_str(&format!(" {} ", m.content)),
                        _ => {
                            s.push_str(&format!("[INST] {system}{} [/INST]", m.content));
                            system.clear();
                        }
                    }
                }
            }
            ChatTemplate::Raw => {
                let parts: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
                s.push_str(&parts.join("\n"));
            }
        }
        s
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A turn.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The literal system text a ChatML template inserts when the first message is not a system
/// message: the text between `<|im_start|>system` plus a newline (real or escaped) and
/// `<|im_end|>`, when it is plain text (no template expressions).
fn default_chatml_system(t: &str) -> Option<String> {
    let start = t.find("<|im_start|>system")? + "<|im_start|>system".len();
    let rest = t.get(start..)?;
    let rest = rest
        .strip_prefix('\n')
        .or_else(|| rest.strip_prefix("\\n"))?;
    let end = rest.find("<|im_end|>")?;
    let text = rest.get(..end)?;
    if text.is_empty() || text.contains(['{', '}', '\'', '"']) {
        return None;
    }
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_gives_chatml_with_its_system_turn() {
        let t = ChatTemplate::detect(Some(SMOLLM2));
        assert_eq!(
            t.apply("Hi"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn other_families() {
        assert_eq!(
            ChatTemplate::detect(Some("{{'<|im_start|>' + m['role']}}")),
            ChatTemplate::ChatMl {
                default_system: None
            }
        );
        assert_eq!(
            ChatTemplate::detect(Some("<|start_header_id|>")),
            ChatTemplate::Llama3
        );
        assert_eq!(ChatTemplate::detect(Some("<|user|>")), ChatTemplate::Zephyr);
        assert_eq!(ChatTemplate::detect(None).apply("x"), "x");
    }

    #[test]
    fn conversations_keep_their_turns_and_a_given_system_turn_replaces_the_default() {
        let t = ChatTemplate::detect(Some(SMOLLM2));
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello."),
            ChatMessage::new("user", "Bye"),
        ];
        assert_eq!(
            t.apply_messages(&msgs),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::Llama2.apply_messages(&msgs),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. [INST] Bye [/INST]"
        );
        assert_eq!(
            ChatTemplate::Zephyr.apply("x"),
            "<|user|>\nx</s>\n<|assistant|>\n"
        );
    }
}
