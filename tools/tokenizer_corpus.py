"""A deterministic corpus of texts that stress tokenizers (a module, not a test): `corpus()`.

    python tools/tokenizer_corpus.py [--count] [--out FILE.json]

corpus(seed=2024) returns the same ~2,400 strs on every run and platform (random.Random with a
fixed seed, no hash-order dependence): many scripts and languages, code, emoji (ZWJ sequences,
skin tones, flags, keycaps), combining marks, runs of whitespace (spaces, tabs, \\r\\n, Unicode
spaces, leading and trailing), runs of digits in several scripts, contractions in mixed case,
the special tokens' own text of the real tokenizers inside user text (with and without spaces,
glued, half-written), SentencePiece's "▁" and "<0x0A>" written as text, and seeded random
Unicode over every plane (unassigned and private-use code points, noncharacters, lone combining
marks; never a surrogate, which UTF-8 cannot carry).

tests/test_tokenizer_json.py checks every real tokenizer against Hugging Face tokenizers on it;
tools/bench_tokenizer.py can time it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

SENTENCES = [
    "Hello, world! How's it going? I'm fine, you're great, they'll come, we've won, she'd go.",
    "HOW'S IT GOING? I'M FINE. YOU'RE. THEY'LL. WE'VE. SHE'D. It'S odd 'tis' 'twas' ''quoted''",
    "The year 2024 had 366 days; π≈3.14159, e=2.71828, 1,000,000.00 and 12345678901234567890.",
    "Numbers: ٠١٢٣٤٥٦٧٨٩ ०१२३४५६७८९ ০১২৩ ๑๒๓ ①②③ ⅠⅡⅢⅣ ½¼¾ ²³¹ 𝟘𝟙𝟚 𐄇𐄈",
    "Deutsch: Größe, Übermaß, Straße. Français: déjà vu, façade, œuvre. Español: ¿Qué tal? ¡Olé!",
    "Русский текст: Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Українська: Чуєш їх, доцю, га?",
    "中文：我能吞下玻璃而不伤身体。日本語：私はガラスを食べられます。それは私を傷つけません。",
    "한국어: 나는 유리를 먹을 수 있어요. 그래도 아프지 않아요. ภาษาไทย: ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ",
    "עברית: אני יכול לאכול זכוכית וזה לא מזיק לי. العربية: أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
    "हिन्दी: मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती. தமிழ்: நான் கண்ணாடி சாப்பிடுவேன்",
    "Tiếng Việt: Tôi có thể ăn thủy tinh mà không hại gì. Yorùbá: Mo lè je̩ dígí, kò ní pa mí lára.",
    "ᚠᛇᚻ᛫ᛒᛦᚦ᛫ᚠᚱᚩᚠᚢᚱ᛫ᚠᛁᚱᚪ᛫ᚷᛖᚻᚹᛦᛚᚳᚢᛗ ꦲꦏ꧀ꦱꦫꦗꦮ 𓀀𓀁𓀂 𐌰𐌱𐌲 ",
    "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷🇩🇪 🧑🏿‍🚀 *️⃣ #️⃣ 1️⃣ 👩🏻‍❤️‍💋‍👨🏾 🫱🏼‍🫲🏿",
    "Combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353\u0354a\u0355\u0356l\u0357g\u0358o\u0359 \u0915\u094d\u0937",
    "Whitespace:\t\ttab\n\nnewlines\r\n\r\ncrlf \x0b\x0c \u00a0nbsp \u2028ls \u2029ps \u3000ideo \u202f \u205f "
    "\u1680 \u200b",
    "Separators \x1c\x1d\x1e\x1f and \x85 next-line and \x00 nul \x07 bell \x7f del",
    "    four spaces\n        eight spaces\n\t\ttabs    \n   \n \n",
    " leading and trailing   ",
    "Zero\u200bwidth\u200cjoiner\u200dmarks\ufeffBOM",
    "Private use \ue000\uf8ff, noncharacters \ufdd0\uffff, replacement \ufffd, astral private \U000f0000",
    "Unassigned \u0378\u0379 \U0002fffe \U0010ffff and new letters \u1c89\ua7cb \U00011380 \U0001e5d0 "
    "digits \U00016130",
    "URLs https://example.com/path?query=1&x=y#frag and mail: someone@example.org",
    "JSON {\"key\": [1, 2.5e-10, true, null], \"s\": \"esc\\\"aped\\n\"}",
    "Math: ∀x∈ℝ, ∃y: x²+y²=1 ⇒ ∫₀¹ f(x)dx ≤ ∑ₙ aₙ; ℵ₀ < 𝔠",
    "Mixed123abc 123abc abc123 a1b2c3 1.2.3 v2.0-beta+build.5 0x1F 1e10",
    "Quotes ‘single’ “double” «guillemets» „low“ 'ascii' \"ascii\" ’s ’t",
    "Ligatures ﬁ ﬂ ﬀ and full-width ＡＢＣ１２３ and half-width ｶﾀｶﾅ",
    "Long s: 'ſ 'ſt and Kelvin K, Angstrom Å, dotted İ and dotless ı, final sigma ΣΑΣ σας",
    "Hangul jamo 각 vs 각; Devanagari nukta क़ vs क\u093c; Dives Akuru \U00011935\U00011930 \U00011938",
    "Tamil: யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்",
    "Georgian: მინას ვჭამ და არა მტკივა. Armenian: Կրնամ ապակի ուտել և ինծի անհանգիստ չըներ",
    "Amharic: ብርጭቆ መብላት እችላለሁ፤ አይጎዳኝም። Mongolian: ᠪᠢ ᠰᠢᠯᠢ ᠢᠳᠡᠶᠦ ᠴᠢᠳᠠᠨᠠ",
    "Burmese: ကျွန်တော် ကျွန်မ မှန်စားနိုင်တယ်။ Khmer: ខ្ញុំអាចញុំកញ្ចក់បាន ដោយគ្មានបញ្ហារ",
    "Sinhala: මට වීදුරු කෑමට හැකියි. Lao: ຂອ້ຍກິນແກ້ວໄດ້ໂດຍທີ່ມັນບໍ່ໄດ້ເຮັດໃຫ້ຂອ້ຍເຈັບ",
    "Persian: .من می توانم بدونِ احساس درد شيشه بخورم Urdu: میں کانچ کھا سکتا ہوں اور مجھے تکلیف نہیں ہوتی ۔",
    "Bengali: আমি কাঁচ খেতে পারি, তাতে আমার কোনো ক্ষতি হয় না। Gujarati: હું કાચ ખાઇ શકુ છુ",
    "Telugu: నేను గాజు తినగలను Kannada: ನಾನು ಗಾಜನ್ನು ತಿನ್ನಬಲ್ಲೆ Malayalam: എനിക്ക് ഗ്ലാസ് തിന്നാം",
    "Tibetan: ཤེལ་སྒོ་ཟ་ནས་ང་ན་གི་མ་རེད། Cherokee: ᏓᏆᏓ ᏂᎦᏛ ᎦᏂᏯᏍᏗ Inuktitut: ᐊᓕᒍᖅ ᓂᕆᔭᕌᖓᒃᑯ",
    "Traditional 漢字 and Simplified 汉字, CJK Ext B 𠀀𠀁𪜀 and radicals ⺀⺁ and ideographic 々〆〇",
    "Japanese mixed: カタカナとひらがなと漢字とRōmaji、全角スペース\u3000半角ｽﾍﾟｰｽ。",
]

CODE = [
    "def f(x: int) -> int:\n    return x ** 2  # comment\n\nclass A(B):\n    pass\n",
    "fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!(\"{:?}\", v); }",
    "SELECT * FROM t WHERE a >= 10 AND b <> 'x'; -- sql\n/* c comment */ int *p = &a[0];",
    "#include <stdio.h>\nint main(void){printf(\"%d\\n\",42);return 0;}\n",
    "<div class=\"x\">Hello &amp; goodbye &#x1F600;</div>\n<br/>\n<table><tr><td>1</td></tr></table>",
    "const add = (a, b) => a + b;\nexport default { add, mul: (a, b) => a * b };\n// done\n",
    "if [ -f ~/.bashrc ]; then\n\tsource ~/.bashrc\nfi\nfor i in $(seq 1 10); do echo \"$i\"; done\n",
    "    \"\"\"Docstring.\"\"\"\n    if not x:\n        raise ValueError(f\"bad {x!r}\")\n\n\n\n",
    "\t\t\tdeeply\n\t\t\t\tindented\n\t\t\t\t\tcode();\n",
    "a=1;b=2;c=a+b\r\nprint(c)\r\n\r\n",
    "x = [i**2 for i in range(100) if i % 3 == 0]  # 33 squares\nprint(sum(x))\n",
    "{\"model\": \"llama\", \"layers\": 32, \"rope_theta\": 500000.0, \"vocab\": [\"a\", \"b\"]}",
    "public static void main(String[] args) { System.out.println(\"Hi\"); }",
    "<?php echo htmlspecialchars($_GET['q'] ?? ''); ?>",
    "   \n\n   \t  \r\n  ",
    "matrix = [[1, 0, 0],\n          [0, 1, 0],\n          [0, 0, 1]]\n",
]

SPECIAL_TEXTS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<pad>", "<mask>", "<bos>",
    "<eos>", "<start_of_turn>", "<end_of_turn>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_5|>", "<tool_call>", "</tool_call>",
    "<think>", "</think>", "<|fim_prefix|>", "<unused0>", "<unused99>", "[multimodal]", "<image_soft_token>",
    "<start_of_image>", "<0x0A>", "<0xE4>", "▁", "▁▁", "▁▁▁▁", "\n\n", "\t\t", "<table>", "</div>",
]
PARTIAL_SPECIALS = ["<|im_start", "im_end|>", "<s", "s>", "<|", "|>", "<|begin_of", "<start_of", "<0x", "<unused"]

WORDS = ["the", "The", "THE", "hello", "world", "don't", "DON'T", "it's", "It'S", "we'll", "WE'LL", "you've",
         "they're", "I'd", "I'M", "o'clock", "rock'n'roll", "naïve", "café", "Ǆemal", "straße", "ΣΊΣΥΦΟΣ",
         "привет", "日本", "中文字", "한국어", "ภาษา", "عربى", "עברית", "हिंदी", "😀", "👍🏽", "🇯🇵", "—", "…",
         "123", "4567", "3.14", "-42", "1e9", "٣٤", "१२", "x²", "½", "_", "__init__", "$var", "@user", "#tag",
         "\\n", "C++", "a.b.c", "foo/bar", "e\u0301", "n\u0303", "\u0301", "\u200d", "\ufe0f"]

WHITESPACE_PIECES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", "\u00a0", "\u3000",
                     "\u2009", "\u200b", " \n", "\n ", " \t ", "\x0b", "\x0c", "\u2028", "\x85"]

DIGIT_SCRIPTS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯", "๐๑๒๓๔๕๖๗๘๙", "０１２３４５６７８９",
                 "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", "①②③④⑤⑥⑦⑧⑨", "¹²³⁴⁵⁶⁷⁸⁹"]

EMOJI = ["😀", "🙂", "🤖", "👍", "👍🏻", "👍🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🔬", "🏳️‍⚧️", "🏴‍☠️", "🇺🇸", "🇪🇺", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
         "1️⃣", "#️⃣", "❤️‍🔥", "🫠", "🪿", "☺", "☺️", "✌🏾", "🧔🏻‍♀️", "👁️‍🗨️"]


def _random_code_point(rng: random.Random) -> str:
    """Any code point but a surrogate, biased towards the interesting planes."""
    while True:
        kind = rng.random()
        if kind < 0.35:
            code = rng.randrange(0x20, 0x3000)
        elif kind < 0.55:
            code = rng.randrange(0x3000, 0x10000)
        elif kind < 0.7:
            code = rng.randrange(0x10000, 0x20000)
        elif kind < 0.8:
            code = rng.randrange(0x20000, 0x40000)
        elif kind < 0.87:
            code = rng.choice([rng.randrange(0xE000, 0xF900), rng.randrange(0xF0000, 0x110000), 0xFFFE, 0xFFFF,
                               0xFDD0 + rng.randrange(32), 0x10FFFF])
        elif kind < 0.95:  # combining marks, alone or after anything
            code = rng.choice([rng.randrange(0x300, 0x370), rng.randrange(0x1AB0, 0x1B00),
                               rng.randrange(0x20D0, 0x2100), rng.randrange(0xFE20, 0xFE30),
                               0x093C, 0x094D, 0x0E31, 0x05B0, 0x064B])
        else:
            code = rng.randrange(0, 0x110000)
        if not 0xD800 <= code < 0xE000:
            return chr(code)


def _random_unicode(rng: random.Random) -> str:
    return "".join(_random_code_point(rng) if rng.random() < 0.7 else rng.choice(" \n\t'sa1.<|>▁")
                   for _ in range(rng.randrange(1, 60)))


def _mix(rng: random.Random, pools) -> str:
    parts = []
    for _ in range(rng.randrange(1, 14)):
        pool = rng.choice(pools)
        parts.append(rng.choice(pool))
        if rng.random() < 0.5:
            parts.append(rng.choice(WHITESPACE_PIECES) if rng.random() < 0.3 else " ")
    return "".join(parts)


def _whitespace_run(rng: random.Random) -> str:
    body = rng.choice(WORDS)
    run = "".join(rng.choice(WHITESPACE_PIECES) for _ in range(rng.randrange(1, 8)))
    shape = rng.randrange(4)
    if shape == 0:
        return run + body
    if shape == 1:
        return body + run
    if shape == 2:
        return body + run + rng.choice(WORDS)
    return " " * rng.randrange(1, 70) + body + "\t" * rng.randrange(0, 5) + "\r\n" * rng.randrange(0, 4)


def _digits(rng: random.Random) -> str:
    script = rng.choice(DIGIT_SCRIPTS)
    run = "".join(rng.choice(script) for _ in range(rng.randrange(1, 30)))
    before = rng.choice(["", "x", "v", "$", " ", "abc", "-", "."])
    return before + run + rng.choice(["", "th", " ", ".5", "%", "abc", "\n"])


def _special_in_text(rng: random.Random) -> str:
    token = rng.choice(SPECIAL_TEXTS + PARTIAL_SPECIALS)
    left = rng.choice(["", " ", "  ", "\n", "word", "word ", "Hi", "中", "😀", "\t"])
    right = rng.choice(["", " ", "  ", "\n", "word", " word", "x", "中", "😀", "\n\n"])
    text = left + token + right
    if rng.random() < 0.4:
        text += rng.choice(SPECIAL_TEXTS) + rng.choice(["", " ", "ok"])
    if rng.random() < 0.2:
        text = rng.choice(SPECIAL_TEXTS) + text
    return text


def _emoji(rng: random.Random) -> str:
    return rng.choice(["", " ", "I feel ", "a"]).join(rng.choice(EMOJI) for _ in range(rng.randrange(1, 6)))


def _contractions(rng: random.Random) -> str:
    subject = rng.choice(["I", "you", "we", "they", "he", "she", "it", "YOU", "We", "tHey"])
    ending = rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D",
                         "'ſ", "’s", "''s", "'x"])
    return f"{subject}{ending} {rng.choice(WORDS)}{rng.choice(['', '.', '!', ' ok'])}"


def corpus(seed: int = 2024) -> list:
    """The texts, the same on every run."""
    rng = random.Random(seed)
    texts = [""] + SENTENCES + CODE
    texts += [" " * n for n in (1, 2, 3, 5, 16, 100)] + ["\n" * n for n in (1, 2, 3, 7, 40)]
    texts += ["\t" * n + "x" for n in (1, 2, 9)] + ["x" + "\r\n" * n for n in (1, 3)]
    texts += ["a" * 300 + " " + "ab" * 200 + " " + "!" * 150 + " " + "1" * 77, "=" * 500 + "-" * 400 + "#" * 64]
    texts += [" ".join(SENTENCES[i:i + 6]) for i in range(0, len(SENTENCES), 6)]
    texts += ["\n\n".join(CODE[i:i + 4]) for i in range(0, len(CODE), 4)]
    generators = [
        (lambda r: _mix(r, [WORDS, WORDS, SENTENCES, EMOJI, SPECIAL_TEXTS, DIGIT_SCRIPTS]), 500),
        (_random_unicode, 500),
        (_whitespace_run, 250),
        (_digits, 200),
        (_special_in_text, 350),
        (_emoji, 150),
        (_contractions, 150),
        (lambda r: r.choice(CODE).replace("    ", r.choice(["    ", "\t", "  ", "        "])), 60),
        (lambda r: r.choice(SENTENCES)[r.randrange(20):r.randrange(20, 200)], 150),
    ]
    for make, count in generators:
        texts += [make(rng) for _ in range(count)]
    # a few long texts, for the long-word paths
    for _ in range(8):
        texts.append("".join(rng.choice(texts[1:60]) + rng.choice(WHITESPACE_PIECES) for _ in range(40)))
    return texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", action="store_true", help="print the number of texts and characters")
    parser.add_argument("--out", help="write the texts as a JSON list to this file")
    args = parser.parse_args(argv)
    texts = corpus()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(texts, f, ensure_ascii=False)
    if args.count or not args.out:
        print(json.dumps({"texts": len(texts), "chars": sum(map(len, texts)),
                          "utf8_bytes": sum(len(t.encode("utf-8")) for t in texts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
