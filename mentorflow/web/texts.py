"""Every sentence the participant pages say, in Swedish and English."""

from __future__ import annotations

from typing import Final

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "apply_title": "Apply",
        "choose_profile": "Choose how you want to take part",
        "apply_as": "Apply as {title}",
        "deadline": "Applications close {when}.",
        "closed_title": "Applications are closed",
        "closed_body": "The application deadline was {when}. Applications are no longer accepted.",
        "not_open_title": "Applications are not open yet",
        "not_open_body": "Applications open {opens}. The deadline is {when}.",
        "program_closed_title": "The program is closed",
        "program_closed_body": "This program has been closed; nothing can be answered any more.",
        "name": "Your name",
        "email": "Your work email",
        "organisation": "Your organisation",
        "department": "Department or unit",
        "manager_name": "Your manager's name",
        "manager_email": "Your manager's email",
        "eligibility": "Please confirm",
        "questions": "Questions",
        "submit": "Send application",
        "required": "Please fill this in.",
        "choose": "Please choose one.",
        "confirm_needed": "Please confirm this.",
        "bad_email": "This is not a valid email address.",
        "manager_is_you": "Your manager must be someone else.",
        "unknown_choice": "Please choose one of the options.",
        "whole_number": "Please write a whole number, such as 12.",
        "errors_above": "Please correct the fields marked below.",
        "thanks_title": "Thank you for your application",
        "thanks_body": "We have sent a confirmation to {email} and asked {manager} to approve it.",
        "updated_body": "Your application was updated. A confirmation went to {email}.",
        "approve_title": "Approve or decline an application",
        "approve_intro": "You answer as {approver} for {applicant}'s application to {program}"
        " (as {profile}).",
        "approve": "Approve",
        "decline": "Decline",
        "answered_title": "Thank you",
        "answered_approved": "You approved {applicant}'s application.",
        "answered_declined": "You declined {applicant}'s application.",
        "busy_apply_title": "Please send the form again in a minute",
        "busy_apply_body": "Your application is saved, but the program could not take it just"
        " now because many people are applying at once. Please send the form again in a"
        " minute: you will not apply twice, and you will get a confirmation by email.",
        "busy_answer_title": "Please try again in a minute",
        "busy_answer_body": "Your answer could not be recorded just now because many people are"
        " answering at once. Please press the button again in a minute; nothing has been"
        " decided yet.",
        "already_title": "Already answered",
        "already_body": "This application has already been answered: {outcome}.",
        "withdrawn_state": "withdrawn by the applicant",
        "approved_state": "approved",
        "declined_state": "declined",
        "expired_title": "This link has expired",
        "expired_body": "The link was valid until {when}.",
        "expired_fresh": "Contact {contact} for a new link or a decision.",
        "invalid_title": "This link is not valid",
        "invalid_body": "The link is incomplete or was changed. Please use the link exactly as"
        " it is in your email.",
        "not_yours_title": "This link is not for you",
        "not_yours_body": "This link belongs to someone who can no longer answer this"
        " application (for example, a manager who was replaced).",
        "withdraw_title": "Withdraw your application",
        "withdraw_intro": "{applicant}, do you want to withdraw your application to {program}?",
        "withdraw": "Withdraw my application",
        "withdrawn_title": "Your application is withdrawn",
        "withdrawn_body": "You have withdrawn your application to {program}.",
        "not_found_title": "Not found",
        "not_found_body": "There is no such program.",
        "hr_expired_title": "This link has expired",
        "hr_expired_body": "The link was valid until {when}. Contact the program's coordinators.",
        "hr_not_yours_title": "This link is not for you",
        "hr_not_yours_body": "This link belongs to an HR contact of another organisation or"
        " program.",
        "capacity_title": "Who takes part",
        "capacity_intro": "You decide as {contact}, by {deadline}: accept, wait-list or do not"
        " select each approved applicant. You can change your decision until then.",
        "capacity_decided": "Already decided by {by}; sending again replaces that decision.",
        "capacity_cap": "Room for at most {cap}; {approved}.",
        "capacity_no_cap": "No limit; {approved}.",
        "capacity_if_undecided": "If no decision is sent by {deadline}: {policy}",
        "capacity_if_undecided_undated": "If no decision is sent: {policy}",
        "policy_waitlist_all": "every approved applicant is put on the wait-list.",
        "policy_accept_up_to_cap": "approved applicants are accepted in the order they applied,"
        " up to the limit; the rest are put on the wait-list.",
        "policy_decline_all": "no approved applicant is selected.",
        "capacity_recorded": "What was recorded",
        "selection_accepted": "accepted",
        "selection_waitlisted": "on the wait-list",
        "selection_declined": "not selected",
        "applicant": "Applicant",
        "accept": "Accept",
        "waitlist": "Wait-list",
        "not_select": "Not selected",
        "capacity_submit": "Send the decision",
        "capacity_thanks_title": "Thank you, your decision is recorded",
        "capacity_thanks_body": "Accepted: {accepted}. Wait-listed: {waitlisted}. Not selected:"
        " {declined}. The applicants hear from us once the pairs are confirmed.",
        "capacity_closed_title": "The decision is closed",
        "capacity_closed_body": "HR's decision on who takes part is no longer open for this"
        " program.",
        "refused_over_cap": "Too many accepted: {detail}. Wait-list or do not select the rest.",
        "refused_incomplete": "Not complete: {detail}.",
        "refused_unknown": "Not possible: {detail}.",
        "refused_conflict": "Not possible: {detail}.",
        "refused_stale": "The pairs changed meanwhile: {detail}.",
        "review_title": "Review the proposed pairs",
        "review_intro": "Proposal {number}: {pairs}, total score {total}, weakest pair {worst}.",
        "score_explained": "A pair's score is the sum of its criteria. A criterion gives at most"
        " its weight, when the two answered alike.",
        "criterion_score": "“{criterion}”: {agreement} ({points} of {weight})",
        "agreement_full": "the same answers",
        "agreement_much": "much in common",
        "agreement_some": "a little in common",
        "agreement_none": "nothing in common",
        "criterion_shared_interests": "Shared interests",
        "criterion_goals": "Goals",
        "criterion_languages": "Languages",
        "criterion_location": "Location",
        "criterion_availability": "Availability",
        "criterion_themes": "Themes",
        "pair_number": "Pair {number}",
        "pair_action": "{action} pair {number}: {mentor} and {adept}",
        "forbidden_action": "{action}: {mentor} and {adept}",
        "review_is_confirmed": "These pairs are confirmed; everyone has been told.",
        "review_note": "Nobody is told anything until you confirm. Locks and forbids take effect"
        " at once in a new proposal.",
        "mentor": "Mentor",
        "adept": "Adept",
        "score": "Score",
        "why": "Why",
        "locked": "locked",
        "lock": "Lock",
        "unlock": "Unlock",
        "forbid": "Forbid",
        "allow": "Allow again",
        "forbidden": "Forbidden pairs",
        "unmatched": "Not paired",
        "options": "What you can do on this page:",
        "option_allow": "Allow a forbidden pair again (under “Forbidden pairs”); a new proposal"
        " is made at once.",
        "option_unlock": "Unlock a locked pair, so that the matching may pair its people anew.",
        "option_swap": "Swap the mentors of two pairs (below).",
        "options_elsewhere": "More mentor places, more accepted mentors or other matching rules"
        " are not changed on this page: they come from the program's definition and each"
        " organisation's decision.",
        "swap_title": "Swap the mentors of two pairs",
        "swap": "Swap",
        "rerun": "Run the matching again",
        "confirm": "Confirm these pairs",
        "review_ask_title": "Confirm the pairs and tell everyone?",
        "review_ask_body": "Confirming proposal {proposal} sends its {pairs} their introductions,"
        " and every other applicant and the managers their outcome, now. It cannot be undone.",
        "review_ask_yes": "Yes, confirm and send",
        "review_confirmed_title": "The pairs are confirmed",
        "review_confirmed_body": "Every participant now gets their pair introduction, and the"
        " others a message; managers are informed.",
        "review_closed_title": "The review is closed",
        "review_closed_body": "The pairs of this program are not under review.",
        "check_in_title": "Have you met?",
        "check_in_intro": "{person}, have you and {partner} met since the last check-in?",
        "check_in_chosen": "Confirm your answer:",
        "check_in_answered": "You answered {when}:",
        "pulse_title": "Halfway: how is it going?",
        "pulse_intro": "{person}, how valuable are your meetings with {partner} so far, from 1"
        " (not at all) to 5 (very)?",
        "answer_yes": "Yes, we have met",
        "answer_not_yet": "Not yet",
        "answer_need_help": "We need help",
        "check_in_thanks_title": "Thank you",
        "check_in_thanks_yes": "Good to hear. Keep the rhythm going!",
        "check_in_thanks_not_yet": "Thank you. Perhaps book a time now, while you think of it.",
        "check_in_thanks_need_help": "The program's HR contacts have been told and will be in"
        " touch with you.",
        "check_in_thanks_pulse": "Thank you for your answer.",
        "check_in_already_title": "Already answered",
        "check_in_already_body": "You have already answered this check-in: {answer}.",
        "pair_closed_title": "This pair has ended",
        "pair_closed_body": "This pair is no longer running, so the check-in cannot be answered.",
        "evaluation_title": "Closing evaluation",
        "evaluation_intro": "Hello {name}, tell us how {program} went. Answers are summarised"
        " without names. The evaluation closes {when}.",
        "evaluation_submit": "Send my answers",
        "evaluation_optional": "(optional)",
        "evaluation_yes": "Yes",
        "evaluation_no": "No",
        "evaluation_out_of_range": "Please choose a value from {low} to {high}.",
        "evaluation_not_a_number": "Please give a number.",
        "evaluation_problems": "Some answers need another look; see below.",
        "evaluation_thanks_title": "Thank you for your answers",
        "evaluation_thanks_body": "Your answers were recorded {when}.",
        "evaluation_done_title": "You have answered",
        "evaluation_done_body": "You answered the closing evaluation {when}. Each person answers"
        " once; thank you.",
        "evaluation_closed_title": "The evaluation is closed",
        "evaluation_closed_body": "The closing evaluation of this program has closed; answers"
        " are no longer taken.",
        "your_answers": "Your answers",
        "too_long": "Please shorten this to at most {limit} characters (it has {length}).",
        "bad_characters": "This holds a character that cannot be used ({character}), an"
        " invisible control or text-direction character. Please type the text again.",
        "unavailable_title": "Please try again in a few minutes",
        "unavailable_body": "The service cannot be reached just now: a part of it is down or"
        " being restarted. Nothing has been lost. Please try again in a few minutes; if you"
        " were sending a form or pressing a button, do it again then: nothing is recorded"
        " twice.",
        "error_title": "Something went wrong",
        "error_body": "The page could not be shown because of an error on our side. Please try"
        " again later; if it keeps happening, contact the program's coordinators.",
        "too_large_title": "The form is too large",
        "too_large_body": "What was sent is larger than any form here takes ({limit}). Please"
        " shorten the longest answers and send it again.",
        "no_page_title": "Page not found",
        "no_page_body": "There is no page at this address. Please use the link exactly as it is"
        " in your email.",
    },
    "sv": {
        "apply_title": "Ansök",
        "choose_profile": "Välj hur du vill delta",
        "apply_as": "Ansök som {title}",
        "deadline": "Sista ansökningsdag är {when}.",
        "closed_title": "Ansökan är stängd",
        "closed_body": "Sista ansökningsdag var {when}. Det går inte längre att ansöka.",
        "not_open_title": "Ansökan har inte öppnat än",
        "not_open_body": "Ansökan öppnar {opens}. Sista ansökningsdag är {when}.",
        "program_closed_title": "Programmet är stängt",
        "program_closed_body": "Programmet har stängts; det går inte längre att svara.",
        "name": "Ditt namn",
        "email": "Din e-postadress på jobbet",
        "organisation": "Din organisation",
        "department": "Avdelning eller enhet",
        "manager_name": "Din chefs namn",
        "manager_email": "Din chefs e-postadress",
        "eligibility": "Bekräfta",
        "questions": "Frågor",
        "submit": "Skicka ansökan",
        "required": "Fyll i detta.",
        "choose": "Välj ett alternativ.",
        "confirm_needed": "Bekräfta detta.",
        "bad_email": "Det här är inte en giltig e-postadress.",
        "manager_is_you": "Din chef måste vara någon annan än du.",
        "unknown_choice": "Välj ett av alternativen.",
        "whole_number": "Skriv ett heltal, till exempel 12.",
        "errors_above": "Rätta de markerade fälten nedan.",
        "thanks_title": "Tack för din ansökan",
        "thanks_body": "Vi har skickat en bekräftelse till {email} och bett {manager} att"
        " godkänna ansökan.",
        "updated_body": "Din ansökan har uppdaterats. En bekräftelse har skickats till {email}.",
        "approve_title": "Godkänn eller avslå en ansökan",
        "approve_intro": "Du svarar som {approver} på {applicant}s ansökan till {program}"
        " (som {profile}).",
        "approve": "Godkänn",
        "decline": "Avslå",
        "answered_title": "Tack",
        "answered_approved": "Du har godkänt {applicant}s ansökan.",
        "answered_declined": "Du har avslagit {applicant}s ansökan.",
        "busy_apply_title": "Skicka formuläret igen om en minut",
        "busy_apply_body": "Din ansökan är sparad, men programmet kunde inte ta emot den just nu"
        " eftersom många ansöker samtidigt. Skicka formuläret igen om en minut: du ansöker inte"
        " två gånger, och du får en bekräftelse via e-post.",
        "busy_answer_title": "Försök igen om en minut",
        "busy_answer_body": "Ditt svar kunde inte registreras just nu eftersom många svarar"
        " samtidigt. Tryck på knappen igen om en minut; inget är beslutat än.",
        "already_title": "Redan besvarad",
        "already_body": "Ansökan är redan besvarad: {outcome}.",
        "withdrawn_state": "återkallad av den sökande",
        "approved_state": "godkänd",
        "declined_state": "avslagen",
        "expired_title": "Länken har gått ut",
        "expired_body": "Länken gällde till {when}.",
        "expired_fresh": "Kontakta {contact} för en ny länk eller ett beslut.",
        "invalid_title": "Länken är inte giltig",
        "invalid_body": "Länken är ofullständig eller har ändrats. Använd länken precis som den"
        " står i ditt mejl.",
        "not_yours_title": "Länken är inte din",
        "not_yours_body": "Länken tillhör någon som inte längre kan svara på ansökan (till"
        " exempel en chef som har ersatts).",
        "withdraw_title": "Återkalla din ansökan",
        "withdraw_intro": "{applicant}, vill du återkalla din ansökan till {program}?",
        "withdraw": "Återkalla min ansökan",
        "withdrawn_title": "Din ansökan är återkallad",
        "withdrawn_body": "Du har återkallat din ansökan till {program}.",
        "not_found_title": "Hittades inte",
        "not_found_body": "Det finns inget sådant program.",
        "hr_expired_title": "Länken har gått ut",
        "hr_expired_body": "Länken gällde till {when}. Kontakta programmets samordnare.",
        "hr_not_yours_title": "Länken är inte din",
        "hr_not_yours_body": "Länken tillhör en HR-kontakt för en annan organisation eller ett"
        " annat program.",
        "capacity_title": "Vilka som deltar",
        "capacity_intro": "Du beslutar som {contact}, senast {deadline}: anta, sätt på reservlistan"
        " eller anta inte varje godkänd sökande. Du kan ändra beslutet fram till dess.",
        "capacity_decided": "Redan beslutat av {by}; skickar du igen ersätts det beslutet.",
        "capacity_cap": "Plats för högst {cap}; {approved}.",
        "capacity_no_cap": "Ingen gräns; {approved}.",
        "capacity_if_undecided": "Om inget beslut har skickats senast {deadline}: {policy}",
        "capacity_if_undecided_undated": "Om inget beslut skickas: {policy}",
        "policy_waitlist_all": "alla godkända sökande sätts på reservlistan.",
        "policy_accept_up_to_cap": "godkända sökande antas i den ordning de ansökte, upp till"
        " gränsen; resten sätts på reservlistan.",
        "policy_decline_all": "ingen av de godkända sökande antas.",
        "capacity_recorded": "Det här registrerades",
        "selection_accepted": "antagen",
        "selection_waitlisted": "på reservlistan",
        "selection_declined": "inte antagen",
        "applicant": "Sökande",
        "accept": "Anta",
        "waitlist": "Reservlista",
        "not_select": "Anta inte",
        "capacity_submit": "Skicka beslutet",
        "capacity_thanks_title": "Tack, beslutet är registrerat",
        "capacity_thanks_body": "Antagna: {accepted}. På reservlistan: {waitlisted}. Inte antagna:"
        " {declined}. De sökande får besked när paren är bekräftade.",
        "capacity_closed_title": "Beslutet är stängt",
        "capacity_closed_body": "HR:s beslut om vilka som deltar är inte längre öppet för det"
        " här programmet.",
        "refused_over_cap": "För många antagna: {detail}. Sätt resten på reservlistan eller anta"
        " dem inte.",
        "refused_incomplete": "Inte komplett: {detail}.",
        "refused_unknown": "Inte möjligt: {detail}.",
        "refused_conflict": "Inte möjligt: {detail}.",
        "refused_stale": "Paren har ändrats under tiden: {detail}.",
        "review_title": "Granska de föreslagna paren",
        "review_intro": "Förslag {number}: {pairs}, total poäng {total}, svagaste par {worst}.",
        "score_explained": "Ett pars poäng är summan av kriterierna. Ett kriterium ger högst sin"
        " vikt, när de två har svarat lika.",
        "criterion_score": "”{criterion}”: {agreement} ({points} av {weight})",
        "agreement_full": "samma svar",
        "agreement_much": "mycket gemensamt",
        "agreement_some": "lite gemensamt",
        "agreement_none": "inget gemensamt",
        "criterion_shared_interests": "Gemensamma intressen",
        "criterion_goals": "Mål",
        "criterion_languages": "Språk",
        "criterion_location": "Ort",
        "criterion_availability": "Tillgänglighet",
        "criterion_themes": "Teman",
        "pair_number": "Par {number}",
        "pair_action": "{action} par {number}: {mentor} och {adept}",
        "forbidden_action": "{action}: {mentor} och {adept}",
        "review_is_confirmed": "Paren är bekräftade; alla har fått besked.",
        "review_note": "Ingen får besked förrän du bekräftar. Låsningar och uteslutningar gäller"
        " direkt i ett nytt förslag.",
        "mentor": "Mentor",
        "adept": "Adept",
        "score": "Poäng",
        "why": "Varför",
        "locked": "låst",
        "lock": "Lås",
        "unlock": "Lås upp",
        "forbid": "Uteslut",
        "allow": "Tillåt igen",
        "forbidden": "Uteslutna par",
        "unmatched": "Inte parade",
        "options": "Det här kan du göra på sidan:",
        "option_allow": "Tillåt ett uteslutet par igen (under ”Uteslutna par”); ett nytt förslag"
        " görs direkt.",
        "option_unlock": "Lås upp ett låst par, så att matchningen kan para dess personer på nytt.",
        "option_swap": "Byt mentorer mellan två par (nedan).",
        "options_elsewhere": "Fler mentorsplatser, fler antagna mentorer eller andra regler för"
        " matchningen ändras inte på den här sidan: de kommer från programmets definition och"
        " varje organisations beslut.",
        "swap_title": "Byt mentorer mellan två par",
        "swap": "Byt",
        "rerun": "Kör matchningen igen",
        "confirm": "Bekräfta paren",
        "review_ask_title": "Bekräfta paren och meddela alla?",
        "review_ask_body": "När du bekräftar förslag {proposal} får dess {pairs} sin introduktion,"
        " och alla andra sökande och cheferna sitt besked, nu. Det går inte att ångra.",
        "review_ask_yes": "Ja, bekräfta och skicka",
        "review_confirmed_title": "Paren är bekräftade",
        "review_confirmed_body": "Varje deltagare får nu sin parintroduktion och övriga ett"
        " besked; cheferna informeras.",
        "review_closed_title": "Granskningen är stängd",
        "review_closed_body": "Paren i det här programmet granskas inte.",
        "check_in_title": "Har ni träffats?",
        "check_in_intro": "{person}, har du och {partner} träffats sedan förra avstämningen?",
        "check_in_chosen": "Bekräfta ditt svar:",
        "check_in_answered": "Du svarade {when}:",
        "pulse_title": "Halvvägs: hur går det?",
        "pulse_intro": "{person}, hur värdefulla är dina möten med {partner} hittills, från 1"
        " (inte alls) till 5 (mycket)?",
        "answer_yes": "Ja, vi har träffats",
        "answer_not_yet": "Inte än",
        "answer_need_help": "Vi behöver stöd",
        "check_in_thanks_title": "Tack",
        "check_in_thanks_yes": "Vad bra. Fortsätt i samma takt!",
        "check_in_thanks_not_yet": "Tack. Boka gärna en tid nu, medan du tänker på det.",
        "check_in_thanks_need_help": "Programmets HR-kontakter har fått veta det och hör av sig"
        " till dig.",
        "check_in_thanks_pulse": "Tack för ditt svar.",
        "check_in_already_title": "Redan besvarad",
        "check_in_already_body": "Du har redan svarat på den här avstämningen: {answer}.",
        "pair_closed_title": "Paret har avslutats",
        "pair_closed_body": "Paret är inte längre aktivt, så avstämningen kan inte besvaras.",
        "evaluation_title": "Slututvärdering",
        "evaluation_intro": "Hej {name}, berätta hur {program} var. Svaren sammanställs utan"
        " namn. Utvärderingen stänger {when}.",
        "evaluation_submit": "Skicka mina svar",
        "evaluation_optional": "(frivillig)",
        "evaluation_yes": "Ja",
        "evaluation_no": "Nej",
        "evaluation_out_of_range": "Välj ett värde från {low} till {high}.",
        "evaluation_not_a_number": "Ange ett tal.",
        "evaluation_problems": "Några svar behöver ses över, se nedan.",
        "evaluation_thanks_title": "Tack för dina svar",
        "evaluation_thanks_body": "Dina svar registrerades {when}.",
        "evaluation_done_title": "Du har svarat",
        "evaluation_done_body": "Du svarade på slututvärderingen {when}. Var och en svarar en"
        " gång; tack.",
        "evaluation_closed_title": "Utvärderingen är stängd",
        "evaluation_closed_body": "Slututvärderingen av programmet har stängt; svar tas inte"
        " längre emot.",
        "your_answers": "Dina svar",
        "too_long": "Korta av texten till högst {limit} tecken (den har {length}).",
        "bad_characters": "Här finns ett tecken som inte kan användas ({character}), ett"
        " osynligt styrtecken eller riktningstecken. Skriv in texten igen.",
        "unavailable_title": "Försök igen om några minuter",
        "unavailable_body": "Tjänsten går inte att nå just nu: en del av den ligger nere eller"
        " startas om. Inget har gått förlorat. Försök igen om några minuter; om du skickade ett"
        " formulär eller tryckte på en knapp kan du göra det igen då: inget registreras två"
        " gånger.",
        "error_title": "Något gick fel",
        "error_body": "Sidan kunde inte visas på grund av ett fel hos oss. Försök igen senare;"
        " om det fortsätter, kontakta programmets samordnare.",
        "too_large_title": "Formuläret är för stort",
        "too_large_body": "Det som skickades är större än något formulär här tar emot ({limit})."
        " Korta av de längsta svaren och skicka igen.",
        "no_page_title": "Sidan finns inte",
        "no_page_body": "Det finns ingen sida på den här adressen. Använd länken precis som den"
        " står i ditt mejl.",
    },
}


# Counts with their noun, in the form the number takes: the CLDR plural category
# ("one", "other") of the count in the language, as gettext's ngettext chooses it
# (see mentorflow.web.numbers.count). {n} is the count, written as the language does.
PLURALS: Final[dict[str, dict[str, dict[str, str]]]] = {
    "en": {
        "approved": {"one": "{n} approved", "other": "{n} approved"},
        "pairs": {"one": "{n} pair", "other": "{n} pairs"},
        "meetings": {"one": "{n} meeting", "other": "{n} meetings"},
        "participants": {"one": "{n} participant", "other": "{n} participants"},
    },
    "sv": {
        "approved": {"one": "{n} godkänd", "other": "{n} godkända"},
        "pairs": {"one": "{n} par", "other": "{n} par"},
        "meetings": {"one": "{n} träff", "other": "{n} träffar"},
        "participants": {"one": "{n} deltagare", "other": "{n} deltagare"},
    },
}


# The matching engine explains in English; the review page says it in the program's language.
ENGINE_PHRASES: Final[dict[str, dict[str, str]]] = {
    "sv": {
        "every pair with a mentor breaks a hard rule": "varje par med en mentor bryter mot en"
        " regel",
        "every pair with an adept breaks a hard rule": "varje par med en adept bryter mot en regel",
        "no mentor place left: more adepts than mentor places": "ingen mentorsplats kvar: fler"
        " adepter än mentorsplatser",
        "every mentor it may pair with is taken by other adepts": "alla mentorer som passar är"
        " redan parade med andra adepter",
        "every adept it may pair with is paired with someone else": "alla adepter som passar är"
        " redan parade med någon annan",
        "wait-list the unmatched adepts": "sätt de oparade adepterna på reservlistan",
        "raise a mentor's capacity, or accept more mentors": "låt en mentor ta fler adepter,"
        " eller anta fler mentorer",
        "relax a hard rule (or a forbid) that excludes them": "lätta på en regel (eller en"
        " uteslutning) som stänger ute dem",
        "same reporting line": "samma chefslinje",
        "same organisation": "samma organisation",
        "same department": "samma avdelning",
        "forbidden by HR": "utesluten av HR",
        "seniority gap under": "erfarenhetsskillnad under",
        "years": "år",
    },
}


def engine_text(text: str, language: str) -> str:
    """The engine's reason or option in ``language`` (unchanged where there is no table)."""
    for phrase, translated in ENGINE_PHRASES.get(language, {}).items():
        text = text.replace(phrase, translated)
    return text
