//! People: listing with cursors that neither skip nor repeat, writes, employment, org links.

use super::*;

impl State {
    pub fn person_index(&self, id: &str) -> ApiResult<usize> {
        if !ids::is_person_id(id) {
            return Err(ApiError::not_found("person"));
        }
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| ApiError::not_found("person"))
    }

    pub fn person(&self, id: &str) -> ApiResult<&PersonRecord> {
        Ok(&self.people[self.person_index(id)?])
    }

    /// One page of people and its pagination.
    pub fn list_people(
        &mut self,
        query: &PeopleQuery,
        exclusive: bool,
        empty_tenant: bool,
    ) -> ApiResult<(Vec<usize>, CursorPagination)> {
        let filter_hash = hash_hex(&[
            query
                .updated_since
                .map(|t| t.to_string())
                .unwrap_or_default()
                .as_bytes(),
            &[u8::from(query.sort_desc), u8::from(exclusive)],
            query.search.as_deref().unwrap_or("").as_bytes(),
        ]);
        let search = query.search.as_ref().map(|s| s.to_lowercase());
        let matches = |record: &PersonRecord| -> bool {
            if empty_tenant {
                return false;
            }
            let p = &record.person;
            if let Some(since) = query.updated_since {
                let keep = if exclusive {
                    p.updated_at > since
                } else {
                    p.updated_at >= since
                };
                if !keep {
                    return false;
                }
            }
            if let Some(needle) = &search {
                let hit = p.display_name.to_lowercase().contains(needle)
                    || p.work_email
                        .as_deref()
                        .is_some_and(|e| e.to_lowercase().contains(needle))
                    || p.staff_id
                        .as_deref()
                        .is_some_and(|s| s.to_lowercase().contains(needle));
                if !hit {
                    return false;
                }
            }
            true
        };
        let limit = query.limit;
        if query.sort_desc {
            // `updated_at` moves on every write, so a keyset cursor over it would skip or repeat
            // people changed between pages. The first page pins the ordered set of matching
            // people; later pages walk that snapshot and serve each person's current state.
            let (snapshot_id, offset, order) = match &query.cursor {
                Some(cursor) => {
                    let text = decode_cursor(cursor)?;
                    let mut parts = text.split('|');
                    let (Some("s1"), Some(hash), Some(id), Some(offset), None) = (
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                    ) else {
                        return Err(ApiError::invalid_field(
                            "cursor",
                            "is not a cursor this API issued",
                        ));
                    };
                    if hash != filter_hash {
                        return Err(ApiError::invalid_field(
                            "cursor",
                            "belongs to a query with different filters",
                        ));
                    }
                    let id: u64 = id.parse().map_err(|_| {
                        ApiError::invalid_field("cursor", "is not a cursor this API issued")
                    })?;
                    let offset: usize = offset.parse().map_err(|_| {
                        ApiError::invalid_field("cursor", "is not a cursor this API issued")
                    })?;
                    let order = self.snapshots.get(&id).cloned().ok_or_else(|| {
                        ApiError::invalid_field("cursor", "has expired; start the listing again")
                    })?;
                    (id, offset, order)
                }
                None => {
                    let mut order: Vec<usize> = (0..self.people.len())
                        .filter(|&i| matches(&self.people[i]))
                        .collect();
                    order.sort_by(|&a, &b| {
                        self.people[b]
                            .person
                            .updated_at
                            .cmp(&self.people[a].person.updated_at)
                            .then(b.cmp(&a))
                    });
                    let id = self.next_snapshot;
                    self.next_snapshot += 1;
                    let order = std::sync::Arc::new(order);
                    if order.len() > limit {
                        self.snapshots.insert(id, order.clone());
                        self.snapshot_order.push_back(id);
                        while self.snapshot_order.len() > MAX_SNAPSHOTS {
                            if let Some(old) = self.snapshot_order.pop_front() {
                                self.snapshots.remove(&old);
                            }
                        }
                    }
                    (id, 0, order)
                }
            };
            let end = (offset + limit).min(order.len());
            let page: Vec<usize> = order.get(offset..end).unwrap_or_default().to_vec();
            let has_more = end < order.len();
            let next_cursor =
                has_more.then(|| encode_cursor(&format!("s1|{filter_hash}|{snapshot_id}|{end}")));
            return Ok((
                page,
                CursorPagination {
                    next_cursor,
                    has_more,
                    limit: limit as u32,
                },
            ));
        }
        // Default order: creation order, an immutable key, so writes between pages can neither
        // move a person past the cursor nor bring one back; people created mid-scan come last.
        let start = match &query.cursor {
            Some(cursor) => {
                let text = decode_cursor(cursor)?;
                let mut parts = text.split('|');
                let (Some("k1"), Some(hash), Some(position), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "is not a cursor this API issued",
                    ));
                };
                if hash != filter_hash {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "belongs to a query with different filters",
                    ));
                }
                position.parse::<usize>().map_err(|_| {
                    ApiError::invalid_field("cursor", "is not a cursor this API issued")
                })?
            }
            None => 0,
        };
        let mut page = Vec::with_capacity(limit);
        let mut index = start;
        while index < self.people.len() && page.len() < limit {
            if matches(&self.people[index]) {
                page.push(index);
            }
            index += 1;
        }
        let has_more = self.people[index.min(self.people.len())..]
            .iter()
            .any(matches);
        let next_cursor = has_more.then(|| encode_cursor(&format!("k1|{filter_hash}|{index}")));
        Ok((
            page,
            CursorPagination {
                next_cursor,
                has_more,
                limit: limit as u32,
            },
        ))
    }

    fn org_unit_by_id(&self, id: &str) -> Option<&OrgUnit> {
        self.org_units.iter().find(|unit| unit.id == id)
    }

    pub fn org_unit(&self, id: &str) -> ApiResult<&OrgUnit> {
        if !ids::is_encrypted_id("org_unit", id) {
            return Err(ApiError::not_found("org unit"));
        }
        self.org_unit_by_id(id)
            .ok_or_else(|| ApiError::not_found("org unit"))
    }

    fn resolve_label(
        list: &[LabelRef],
        field: &str,
        id: &str,
        prefix: &str,
    ) -> ApiResult<LabelRef> {
        if !ids::is_encrypted_id(prefix, id) {
            return Err(ApiError::invalid_field(
                field,
                "does not match the id pattern",
            ));
        }
        list.iter()
            .find(|item| item.id == id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(field))
    }

    fn resolve_department(&self, id: &str) -> ApiResult<DepartmentRef> {
        if !ids::is_encrypted_id("org_unit", id) {
            return Err(ApiError::invalid_field(
                "department_org_unit_id",
                "does not match the id pattern",
            ));
        }
        self.org_unit_by_id(id)
            .filter(|unit| !unit.is_archived)
            .map(|unit| DepartmentRef {
                id: unit.id.clone(),
                name: unit.name.clone(),
            })
            .ok_or_else(|| ApiError::not_found("department_org_unit_id"))
    }

    fn resolve_manager(&self, id: &str, for_person: Option<&str>) -> ApiResult<PersonRef> {
        if !ids::is_person_id(id) {
            return Err(ApiError::invalid_field(
                "manager_id",
                "does not match the id pattern",
            ));
        }
        if for_person == Some(id) {
            return Err(ApiError::invalid_field(
                "manager_id",
                "a person cannot manage themselves",
            ));
        }
        let record = self
            .by_id
            .get(id)
            .map(|&i| &self.people[i])
            .ok_or_else(|| ApiError::not_found("manager_id"))?;
        Ok(PersonRef {
            id: record.person.id.clone(),
            display_name: record.person.display_name.clone(),
        })
    }

    pub fn create_person(
        &mut self,
        request: CreatePersonRequest,
        now: Timestamp,
    ) -> ApiResult<usize> {
        if let Some(email) = &request.work_email {
            let taken = self.people.iter().any(|record| {
                record
                    .person
                    .work_email
                    .as_deref()
                    .is_some_and(|existing| existing.eq_ignore_ascii_case(email))
            });
            if taken {
                return Err(ApiError::conflict(
                    "a person with this work_email already exists",
                ));
            }
        }
        let department = request
            .department_org_unit_id
            .as_deref()
            .map(|id| self.resolve_department(id))
            .transpose()?;
        let manager = request
            .manager_id
            .as_deref()
            .map(|id| self.resolve_manager(id, None))
            .transpose()?;
        let work_place = request
            .work_place_id
            .as_deref()
            .map(|id| Self::resolve_label(&self.work_places, "work_place_id", id, "wp"))
            .transpose()?;
        let work_type = request
            .work_type_id
            .as_deref()
            .map(|id| Self::resolve_label(&self.work_types, "work_type_id", id, "wt"))
            .transpose()?;
        let start_date = request
            .start_date
            .as_deref()
            .map(|d| parse_date("start_date", d))
            .transpose()?;
        let id = loop {
            let candidate = ids::person_id(self.rng.random::<u64>());
            if !self.by_id.contains_key(&candidate) {
                break candidate;
            }
        };
        let display_name = format!(
            "{} {}",
            request
                .preferred_name
                .as_deref()
                .unwrap_or(&request.first_name),
            request.last_name
        );
        let staff = self.next_staff;
        self.next_staff += 1;
        let person = Person {
            id: id.clone(),
            work_email: request.work_email,
            first_name: Some(request.first_name),
            preferred_name: request.preferred_name,
            last_name: Some(request.last_name),
            display_name,
            staff_id: Some(format!("E{staff:05}")),
            job_title: request.job_title,
            department,
            manager,
            work_place,
            work_type,
            working_pattern: None,
            contracted_weekly_minutes: None,
            full_time_weekly_minutes: None,
            fte: None,
            status: Some("active".into()),
            start_date,
            end_date: None,
            created_at: now,
            updated_at: now,
            hint: Default::default(),
        };
        let index = self.people.len();
        self.people.push(PersonRecord {
            person,
            version: 1,
            employment_version: 1,
            team: None,
        });
        self.by_id.insert(id.clone(), index);
        self.emit(EventType::PersonCreated, &id, now);
        Ok(index)
    }

    /// Applies a change to a person: bumps its version and `updated_at`, refreshes the
    /// `manager.display_name` its reports show, and emits `event` (UI-style edits pass `None`).
    pub fn touch_person(&mut self, index: usize, now: Timestamp, event: Option<EventType>) {
        let record = &mut self.people[index];
        record.version += 1;
        // `updated_at` strictly increases per person even when the clock is frozen, so a change
        // is always visible to `updated_since`.
        record.person.updated_at = now.max(record.person.updated_at);
        let id = record.person.id.clone();
        let display_name = record.person.display_name.clone();
        for other in &mut self.people {
            if let Some(manager) = other.person.manager.as_mut()
                && manager.id == id
                && manager.display_name != display_name
            {
                manager.display_name.clone_from(&display_name);
            }
        }
        if let Some(event) = event {
            self.emit(event, &id, now);
        }
    }

    pub fn update_person(&mut self, index: usize, request: UpdatePersonRequest, now: Timestamp) {
        let person = &mut self.people[index].person;
        if let Some(first) = request.first_name {
            person.first_name = Some(first);
        }
        if let Some(last) = request.last_name {
            person.last_name = Some(last);
        }
        if let Some(preferred) = request.preferred_name {
            person.preferred_name = preferred;
        }
        person.display_name = display_name(person);
        self.touch_person(index, now, Some(EventType::PersonUpdated));
    }

    pub fn update_employment(
        &mut self,
        index: usize,
        request: UpdateEmploymentRequest,
        now: Timestamp,
        event: Option<EventType>,
    ) -> ApiResult<()> {
        let id = self.people[index].person.id.clone();
        let department = match request.department_org_unit_id.as_ref() {
            Some(Some(dept)) => Some(Some(self.resolve_department(dept)?)),
            Some(None) => Some(None),
            None => None,
        };
        let manager = match request.manager_id.as_ref() {
            Some(Some(manager)) => Some(Some(self.resolve_manager(manager, Some(&id))?)),
            Some(None) => Some(None),
            None => None,
        };
        let label =
            |list: &[LabelRef], field: &str, value: &Option<Option<String>>, prefix: &str| {
                match value {
                    Some(Some(id)) => {
                        Self::resolve_label(list, field, id, prefix).map(|l| Some(Some(l)))
                    }
                    Some(None) => Ok(Some(None)),
                    None => Ok(None),
                }
            };
        let work_place = label(
            &self.work_places,
            "work_place_id",
            &request.work_place_id,
            "wp",
        )?;
        let work_type = label(
            &self.work_types,
            "work_type_id",
            &request.work_type_id,
            "wt",
        )?;
        let pattern = label(
            &self.working_patterns,
            "working_pattern_id",
            &request.working_pattern_id,
            "working_pattern",
        )?;
        let start_date = match request.start_date.as_ref() {
            Some(Some(d)) => Some(Some(parse_date("start_date", d)?)),
            Some(None) => Some(None),
            None => None,
        };
        let record = &mut self.people[index];
        let person = &mut record.person;
        if let Some(title) = request.job_title {
            person.job_title = title;
        }
        if let Some(department) = department {
            person.department = department;
        }
        if let Some(manager) = manager {
            person.manager = manager;
        }
        if let Some(place) = work_place {
            person.work_place = place;
        }
        if let Some(kind) = work_type {
            person.work_type = kind;
        }
        if let Some(pattern) = pattern {
            person.working_pattern = pattern;
        }
        if let Some(minutes) = request.contracted_weekly_minutes {
            person.contracted_weekly_minutes = Some(minutes);
            person.fte = person
                .full_time_weekly_minutes
                .map(|full| f64::from(minutes) / f64::from(full.max(1)));
        }
        if let Some(start) = start_date {
            person.start_date = start;
        }
        record.employment_version += 1;
        self.touch_person(index, now, event);
        Ok(())
    }

    pub fn end_person(&mut self, index: usize, end_date: Date, now: Timestamp) -> ApiResult<()> {
        let person = &mut self.people[index].person;
        if person.status.as_deref() == Some("inactive") {
            return Err(ApiError::conflict("the person has already ended"));
        }
        if person.start_date.is_some_and(|start| end_date < start) {
            return Err(ApiError::invalid_field(
                "end_date",
                "is before the person's start_date",
            ));
        }
        person.end_date = Some(end_date);
        person.status = Some("inactive".into());
        self.people[index].employment_version += 1;
        self.touch_person(index, now, Some(EventType::PersonEnded));
        Ok(())
    }

    pub fn reactivate_person(
        &mut self,
        index: usize,
        request: Option<ReactivatePersonRequest>,
        now: Timestamp,
    ) -> ApiResult<()> {
        if self.people[index].person.status.as_deref() != Some("inactive") {
            return Err(ApiError::conflict(
                "only an ended person can be reactivated",
            ));
        }
        if let Some(request) = request {
            let start = parse_date("start_date", &request.start_date)?;
            let employment = UpdateEmploymentRequest {
                job_title: request.job_title,
                department_org_unit_id: request.department_org_unit_id,
                manager_id: request.manager_id,
                work_place_id: request.work_place_id,
                work_type_id: request.work_type_id,
                working_pattern_id: request.working_pattern_id,
                contracted_weekly_minutes: request.contracted_weekly_minutes,
                start_date: None,
            };
            self.update_employment(index, employment, now, None)?;
            self.people[index].person.start_date = Some(start);
        }
        let person = &mut self.people[index].person;
        person.end_date = None;
        person.status = Some("active".into());
        self.people[index].employment_version += 1;
        self.touch_person(index, now, Some(EventType::PersonReactivated));
        Ok(())
    }

    pub fn employment(&self, index: usize) -> Employment {
        let record = &self.people[index];
        let p = &record.person;
        Employment {
            person_id: p.id.clone(),
            timeline_version: record.employment_version,
            job_title: p.job_title.clone(),
            department: p.department.as_ref().map(|d| LabelRef {
                id: d.id.clone(),
                label: d.name.clone(),
            }),
            manager: p.manager.clone(),
            work_place: p.work_place.clone(),
            work_type: p.work_type.clone(),
            working_pattern: p.working_pattern.clone(),
            contracted_weekly_minutes: p.contracted_weekly_minutes,
            full_time_weekly_minutes: p.full_time_weekly_minutes,
            fte: p.fte,
            start_date: p.start_date,
            end_date: p.end_date,
            updated_at: p.updated_at,
        }
    }

    /// Org links derived from the person's department, team and manager.
    pub fn org_links(&self, index: usize, now: Timestamp) -> OrgLinks {
        let record = &self.people[index];
        let p = &record.person;
        let today = today(now);
        let from = p.start_date.unwrap_or_else(|| super::today(p.created_at));
        // effective_to is exclusive: the day after the last working day.
        let to = p.end_date.and_then(|end| end.tomorrow().ok());
        let current = from <= today && to.is_none_or(|to| to > today);
        let leads_people = self
            .people
            .iter()
            .any(|other| other.person.manager.as_ref().is_some_and(|m| m.id == p.id));
        let mut memberships = Vec::new();
        let units = p
            .department
            .iter()
            .map(|d| (d.id.as_str(), true))
            .chain(record.team.iter().map(|t| (t.as_str(), false)));
        for (unit_id, primary) in units {
            let Some(unit) = self.org_unit_by_id(unit_id) else {
                continue;
            };
            memberships.push(Membership {
                id: ids::encrypted_id("org_unit_membership", &format!("{}:{unit_id}", p.id)),
                person_id: p.id.clone(),
                org_unit: MembershipOrgUnit {
                    id: unit.id.clone(),
                    kind: unit.kind,
                    name: unit.name.clone(),
                    code: unit.code.clone(),
                    archived_at: unit.archived_at,
                },
                role: if leads_people && primary {
                    MembershipRole::Manager
                } else {
                    MembershipRole::Member
                },
                is_primary: primary,
                is_current: current,
                effective_from: from,
                effective_to: to,
                source: RecordSource::Manual,
                provider: ProviderRef::default(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            });
        }
        let relationships = p
            .manager
            .iter()
            .map(|manager| Relationship {
                id: ids::encrypted_id(
                    "person_relationship",
                    &format!("{}:line_manager:{}", p.id, manager.id),
                ),
                kind: RelationshipType::LineManager,
                related_person: manager.clone(),
                is_primary: true,
                is_current: current,
                effective_from: from,
                effective_to: to,
                source: RecordSource::Manual,
                provider: ProviderRef::default(),
                created_at: p.created_at,
                updated_at: p.updated_at,
            })
            .collect();
        OrgLinks {
            person_id: p.id.clone(),
            memberships,
            relationships,
        }
    }
}

/// HollyHR's display name: the preferred name (else the first name) and the last name.
pub fn display_name(person: &Person) -> String {
    format!(
        "{} {}",
        person
            .preferred_name
            .as_deref()
            .or(person.first_name.as_deref())
            .unwrap_or_default(),
        person.last_name.as_deref().unwrap_or_default()
    )
    .trim()
    .to_owned()
}
